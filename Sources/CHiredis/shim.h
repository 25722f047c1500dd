#ifndef IVY_CHIREDIS_SHIM_H
#define IVY_CHIREDIS_SHIM_H
#include <hiredis/hiredis.h>
#include <poll.h>
#include <sys/socket.h>

// hiredis returns replies as void *; these give Swift typed pointers.
static inline redisReply *ivy_redis_command_argv(redisContext *c, int argc, const char **argv, const size_t *argvlen) {
    return (redisReply *)redisCommandArgv(c, argc, argv, argvlen);
}
static inline int ivy_redis_get_reply(redisContext *c, redisReply **reply) {
    return redisGetReply(c, (void **)reply);
}
static inline int ivy_redis_get_reply_from_reader(redisContext *c, redisReply **reply) {
    return redisGetReplyFromReader(c, (void **)reply);
}
#endif
