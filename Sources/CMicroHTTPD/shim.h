#ifndef IVY_CMICROHTTPD_SHIM_H
#define IVY_CMICROHTTPD_SHIM_H
#include <stdint.h>
#include <sys/socket.h>
#include <microhttpd.h>

// MHD_start_daemon and MHD_get_daemon_info are variadic, which Swift cannot call: fixed wrappers
// for the options Ivy sets.

/// Starts a daemon with a thread per connection (handlers may block) on `address`, waiting with
/// poll() (select() refuses descriptors past FD_SETSIZE, which a busy process reaches), each
/// connection limited to `memory_limit` bytes of buffers (headers beyond it are refused), idle
/// ones closed after `timeout` seconds, at most `connection_limit` at once; requests that break
/// HTTP/1.1's rules (no `Host`, say) get 400.
static inline struct MHD_Daemon *ivy_mhd_start(
    unsigned int flags, const struct sockaddr *address, MHD_AccessHandlerCallback handler, void *context,
    MHD_RequestCompletedCallback completed, size_t memory_limit, unsigned int timeout,
    unsigned int connection_limit) {
    return MHD_start_daemon(
        flags | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL, 0, NULL,
        NULL, handler, context, MHD_OPTION_SOCK_ADDR, address, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        memory_limit, MHD_OPTION_CONNECTION_TIMEOUT, timeout, MHD_OPTION_CONNECTION_LIMIT,
        connection_limit, MHD_OPTION_STRICT_FOR_CLIENT, (int)1, MHD_OPTION_NOTIFY_COMPLETED, completed,
        context, MHD_OPTION_END);
}

/// The port the daemon listens on (the one the system chose for port 0); 0 if unknown.
static inline uint16_t ivy_mhd_port(struct MHD_Daemon *daemon) {
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT);
    return info == NULL ? 0 : info->port;
}
#endif
