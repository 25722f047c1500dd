#ifndef IVY_CCURL_SHIM_H
#define IVY_CCURL_SHIM_H
#include <curl/curl.h>
#endif
