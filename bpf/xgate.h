/* SPDX-License-Identifier: (MIT OR Apache-2.0) */
/*
 * Map layouts and constants shared by xgate.bpf.c and the Rust loader
 * (dataplane/src/bpf/). Only plain structs and constants: libbpf-cargo turns
 * the structs used by maps into Rust types in the generated skeleton.
 *
 * Byte order: `ports`, `listeners` and `stats` are keyed by the TCP port in
 * HOST byte order (what user space and sock_ops' local_port use). The
 * `user_flows` key holds addresses and ports in NETWORK byte order, exactly
 * as they sit in the packet, so the XDP fast path does no swapping.
 */
#ifndef XGATE_H
#define XGATE_H

/* Port states, the value of the `ports` map. */
#define XGATE_PORT_OFF 0      /* kernel path: nothing steered */
#define XGATE_PORT_ON 1       /* new SYNs and unknown flows go to user space */
#define XGATE_PORT_DRAINING 2 /* new SYNs to the kernel; unknown non-SYN to user space */

/* Map sizes (user space may shrink or grow them between open and load). */
#define XGATE_MAX_QUEUES 64
#define XGATE_MAX_PORTS 1024
#define XGATE_MAX_USER_FLOWS 262144

/* `stats` key for counters that belong to no port. */
#define XGATE_STATS_GLOBAL 0

/*
 * IPv6 extension headers the XDP program looks through; a longer chain is
 * passed. RFC 8200 section 4.1 has each header occur once, Destination Options
 * twice: of the ones the walk looks through (Fragment, ESP and AH are never
 * steered), Hop-by-Hop, Destination Options, Routing and Destination Options
 * are the most a TCP sender puts in front of its segment.
 */
#define XGATE_IPV6_MAX_EXT 4
/*
 * Options checked per Hop-by-Hop or Destination Options header; a header
 * holding more (padding a sender would write as one PadN) is passed.
 */
#define XGATE_IPV6_MAX_OPTS 8

/* Per-port counter indices into struct xgate_stats.v (per CPU). */
enum xgate_stat {
	XGATE_STAT_REDIRECTED = 0,   /* XDP_REDIRECT into an AF_XDP socket */
	XGATE_STAT_PASSED = 1,       /* left to the kernel */
	XGATE_STAT_SYN_STEERED = 2,  /* pure SYNs redirected (rule 4) */
	XGATE_STAT_KERNEL_OWNED = 3, /* passed because a kernel socket owns the 4-tuple (rule 3) */
	XGATE_STAT_USER_FLOW = 4,    /* hits in user_flows (rule 2) */
	XGATE_STAT_UNKNOWN_STEERED = 5, /* non-SYN segments of unknown flows redirected (rule 5) */
	XGATE_STAT_NO_XSK = 6,       /* wanted a redirect, no socket on that queue: passed */
	XGATE_STAT_KERNEL_CONNS = 7, /* kernel-path passive connections (sock_ops) */
	XGATE_STAT_NOT_TCP = 8,      /* global only: not TCP, a fragment, ICMP not steered (rule 1) */
	XGATE_STAT_REDIRECTED_V6 = 9, /* of REDIRECTED, the IPv6 packets (TCP and ICMPv6) */
	XGATE_STAT_ICMP_STEERED = 10, /* of REDIRECTED, ICMP errors quoting a user flow (rule 1a), by its local port */
	XGATE_STAT_KERNEL_CONNS_V6 = 11, /* of KERNEL_CONNS, the IPv6 clients (not IPv4-mapped) */
	XGATE_STAT_NO_LISTENER = 12, /* passed: no listener serves the destination address (rule 3a) */
	XGATE_STAT_NOT_LOCAL = 13, /* passed: the destination is not a local address (rule 3b) */
	XGATE_STAT_MAX = 14,
};

struct xgate_stats {
	__u64 v[XGATE_STAT_MAX];
};

/* `listeners` value: what sock_ops saw when the gateway's socket listened. */
struct xgate_listener {
	__u64 cookie; /* socket cookie of the listening socket */
	/*
	 * AF_INET, or AF_INET6 for a dual-stack listener and a v6-only one alike
	 * (sock_ops cannot tell them apart).
	 */
	__u32 family;
	__u32 _pad;
	/*
	 * The address it is bound to, network byte order: AF_INET's in addr[0],
	 * AF_INET6's in all four words (:: for a wildcard). With the family it
	 * names the gateway's listener, which rule 3a compares with the listener
	 * the kernel's lookup finds for a segment (another process may listen on
	 * the port at another address, or in the other family).
	 */
	__u32 addr[4];
};

/*
 * `user_flows` key: one TCP connection owned by user space, network byte order.
 * One key for both families: an IPv4 address is stored IPv4-mapped
 * (::ffff:a.b.c.d, RFC 4291 section 2.5.5.2). No IPv6 flow ever has such an
 * address (XDP passes IPv6 packets carrying one, and Linux drops them), so an
 * IPv4 key never equals an IPv6 one.
 */
struct xgate_flow {
	__u32 local_ip[4];  /* gateway address (packet's destination) */
	__u32 remote_ip[4]; /* client address (packet's source) */
	__u16 local_port;   /* gateway port (packet's destination port) */
	__u16 remote_port;  /* client port (packet's source port) */
};

/* `user_flows` value: which poller owns the flow. */
struct xgate_flow_owner {
	__u32 queue; /* RX queue / poller index */
	__u32 _pad;
};

#endif /* XGATE_H */
