#ifndef IVY_CRABBITMQ_SHIM_H
#define IVY_CRABBITMQ_SHIM_H
// Debian 12 (rabbitmq-c 0.11) installs these at the top of /usr/include; newer releases
// move them to <rabbitmq-c/...>.
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <amqp_ssl_socket.h>
#include <openssl/ssl.h>
#include <sys/time.h>

// A timeval made in C: in Swift its initializer belongs to Glibc or to Dispatch, whichever
// module the build happened to import first, and Swift 6 insists on importing that one.
static inline struct timeval ivy_timeval(long seconds, long microseconds) {
    struct timeval value = {.tv_sec = seconds, .tv_usec = microseconds};
    return value;
}

// amqp_login_with_properties is variadic (the SASL method's arguments follow), which Swift
// cannot call: PLAIN, with the user and password as its two arguments.
static inline amqp_rpc_reply_t ivy_amqp_login_plain(
    amqp_connection_state_t state, const char *vhost, int channel_max, int frame_max, int heartbeat,
    const amqp_table_t *client_properties, const char *user, const char *password) {
    return amqp_login_with_properties(state, vhost, channel_max, frame_max, heartbeat, client_properties,
                                      AMQP_SASL_METHOD_PLAIN, user, password);
}

// rabbitmq-c 0.11 verifies the broker's certificate (peer and host name) by default, but against
// nothing unless a CA file is set: this trusts the system's store, as OpenSSL's defaults find it.
static inline int ivy_amqp_ssl_trust_system_store(amqp_socket_t *socket) {
    SSL_CTX *context = (SSL_CTX *)amqp_ssl_socket_get_context(socket);
    return context != NULL && SSL_CTX_set_default_verify_paths(context) == 1 ? AMQP_STATUS_OK
                                                                              : AMQP_STATUS_SSL_ERROR;
}

// rabbitmq-c 0.11 matches the host only against the certificate's DNS names and common name, so
// a broker reached by IP address with the address as an IP SAN fails. For such hosts its check
// is turned off and OpenSSL's is used instead: the address is set on the context's verification
// parameters (copied to the connection by SSL_new), and a mismatch fails the chain's
// verification, which rabbitmq-c checks (SSL_get_verify_result) whatever the verify mode.
static inline int ivy_amqp_ssl_expect_ip_address(amqp_socket_t *socket, const char *address) {
    SSL_CTX *context = (SSL_CTX *)amqp_ssl_socket_get_context(socket);
    X509_VERIFY_PARAM *parameters = context != NULL ? SSL_CTX_get0_param(context) : NULL;
    return parameters != NULL && X509_VERIFY_PARAM_set1_ip_asc(parameters, address) == 1
               ? AMQP_STATUS_OK
               : AMQP_STATUS_SSL_ERROR;
}
#endif
