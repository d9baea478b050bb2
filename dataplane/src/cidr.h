/* cidr.h - lists of IP networks ("10.0.0.0/8, 192.168.1.7, fd00::/8") and membership
 * tests, for TRUSTED_PROXIES. A bare address is a /32 (or /128). */
#ifndef GW_CIDR_H
#define GW_CIDR_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    int family; /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    int bits;
} gw_cidr_t;

/* Parses a comma/space separated list; returns the count (0 for an empty list) or -1
 * with the offending entry named in err. *out is malloc'd (free it). */
int gw_cidr_parse_list(const char *list, gw_cidr_t **out, char *err, size_t errlen);

/* Whether the textual address ip falls in any of the n networks. */
bool gw_cidr_contains(const gw_cidr_t *nets, int n, const char *ip);

/* The client named by an X-Forwarded-For value that trusted proxies appended to: the
 * rightmost entry that is not one of the n trusted networks (entries left of it came
 * from the client and are not read at all). Returns 0 with the address in out, or -1
 * when an entry it must read is not a bare IP address: a trusted proxy never writes
 * that, so the request is refused rather than counted as the proxy's own. */
int gw_xff_client(const char *xff, size_t len, const gw_cidr_t *trusted, int n, char *out,
                  size_t outlen);

#endif
