#ifndef IVY_CRABBITMQ_SHIM_H
#define IVY_CRABBITMQ_SHIM_H
// Debian 12 (rabbitmq-c 0.11) installs these at the top of /usr/include; newer releases
// move them to <rabbitmq-c/...>.
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <amqp_ssl_socket.h>
#endif
