#include "stats.h"

gw_stats_t gw_stats;

const uint64_t gw_lag_bounds_us[GW_LAG_BUCKETS] = {
    50,    100,   250,    500,    1000,   2500,    5000,    10000,
    25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000,
};
