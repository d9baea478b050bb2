/* nodemsg.h - what a data plane may say about itself to the control plane, checked on
 * both sides: the node refuses to start with a NODE_ID the control plane would refuse,
 * and the control plane refuses hellos and stats reports outside these bounds. A node
 * holds the node token, but a process holding it must not make the control plane keep
 * unbounded state or write raw bytes into logs and terminals.
 *
 * Every check returns 0, or -1 with a reason ("field: problem") in err. Nothing here
 * allocates.
 */
#ifndef GW_NODEMSG_H
#define GW_NODEMSG_H

#include <stddef.h>

#include "wsgw/control/v1/control.pb-c.h"

#define GW_NODE_ID_MAX        128        /* bytes of node_id */
#define GW_NODE_ADDRESS_MAX   256        /* bytes of the hello's address */
#define GW_NODE_BUILD_MAX     64         /* bytes of the hello's build_version */
#define GW_NODE_EPOCH_MAX     64         /* bytes of the hello's config_epoch */
#define GW_NODE_ERROR_MAX     1024       /* bytes of a NACK's error_detail kept */
#define GW_STATS_MAX_COUNTERS 256        /* counters in one stats report */
#define GW_STATS_KEY_MAX      64         /* bytes of a counter name */
#define GW_NODE_MSG_MAX       (64 << 10) /* bytes of one message from a node */

/* node_id and address: 1..max bytes of [A-Za-z0-9._:@/+%[]-] (host names, host:port,
 * [IPv6]:port), so they print as one key=value token and one table cell. */
int gw_node_id_check(const char *id, char *err, size_t errlen);

/* The whole hello: node_id, address (may be empty), build_version (printable ASCII
 * without quotes or backslashes; may be empty), config_digest (empty or 32 bytes). */
int gw_node_hello_check(const Wsgw__Control__V1__NodeHello *h, char *err, size_t errlen);

/* A stats report: at most GW_STATS_MAX_COUNTERS counters, names of 1..GW_STATS_KEY_MAX
 * bytes of [a-z0-9_.:], each name once. O(n). */
int gw_node_stats_check(const Wsgw__Control__V1__NodeStats *st, char *err, size_t errlen);

#endif
