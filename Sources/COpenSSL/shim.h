#ifndef IVY_COPENSSL_SHIM_H
#define IVY_COPENSSL_SHIM_H
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

// OpenSSL spells these as macros over SSL_CTX_ctrl and SSL_ctrl, which Swift cannot call.
static inline int ivy_ssl_ctx_set_min_proto_version(SSL_CTX *context, int version) {
    return (int)SSL_CTX_set_min_proto_version(context, version);
}
static inline long ivy_ssl_set_mode(SSL *ssl, long mode) {
    return SSL_set_mode(ssl, mode);
}
static inline int ivy_ssl_set_tlsext_host_name(SSL *ssl, const char *name) {
    return (int)SSL_set_tlsext_host_name(ssl, name);
}

// A key file with a passphrase fails to load instead of OpenSSL asking for it on the terminal.
static int ivy_ssl_no_passphrase(char *buffer, int size, int writing, void *context) {
    (void)buffer; (void)size; (void)writing; (void)context;
    return 0;
}
static inline void ivy_ssl_ctx_refuse_passphrases(SSL_CTX *context) {
    SSL_CTX_set_default_passwd_cb(context, ivy_ssl_no_passphrase);
}
#endif
