#ifndef IVY_CHIREDIS_SHIM_H
#define IVY_CHIREDIS_SHIM_H
#include <hiredis/hiredis.h>
#endif
