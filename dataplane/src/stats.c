#include "stats.h"

gw_stats_t gw_stats;
