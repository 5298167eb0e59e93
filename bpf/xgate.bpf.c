// SPDX-License-Identifier: (MIT OR Apache-2.0)
/*
 * xgate steering: the XDP program that decides, per packet, whether a TCP
 * segment goes to the gateway's AF_XDP sockets or to the kernel, and the
 * sock_ops program that tells it which ports the gateway really listens on.
 * The rules are stated in docs/steering.md, numbered the same here.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "xgate.h"

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff
#define VLAN_HLEN 4
/* <linux/icmp.h> pulls in libc headers, so what is needed of it is here. */
#define ICMP_DEST_UNREACH 3
#define ICMP_FRAG_NEEDED 4
#define ICMPV6_PKT_TOOBIG 2

/* The 8 bytes ICMPv4 and ICMPv6 errors share before the quoted packet. */
struct icmp_err {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be32 rest; /* unused, or the next-hop MTU */
};

/* Tunables, set by the loader between open and load. */
const volatile __u8 xgate_count_stats = 1;

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, XGATE_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XGATE_MAX_PORTS);
	__type(key, __u16);
	__type(value, __u32);
} ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XGATE_MAX_PORTS);
	__type(key, __u16);
	__type(value, struct xgate_listener);
} listeners SEC(".maps");

/* Not LRU: evicting an entry would hand a live user-space connection to the kernel. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XGATE_MAX_USER_FLOWS);
	__type(key, struct xgate_flow);
	__type(value, struct xgate_flow_owner);
} user_flows SEC(".maps");

/*
 * Per-CPU counters per port. Entries are created by user space (port state
 * changes, start) and by sock_ops on listen, never by XDP: a flood to random
 * ports must not create anything.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, XGATE_MAX_PORTS + 1);
	__type(key, __u16);
	__type(value, struct xgate_stats);
} stats SEC(".maps");

static __always_inline void count(struct xgate_stats *s, enum xgate_stat idx)
{
	if (xgate_count_stats && s && idx < XGATE_STAT_MAX)
		s->v[idx]++;
}

static __always_inline void count_global(enum xgate_stat idx)
{
	__u16 key = XGATE_STATS_GLOBAL;

	if (xgate_count_stats)
		count(bpf_map_lookup_elem(&stats, &key), idx);
}

/* Rule 1's verdict. */
static __always_inline int not_tcp(void)
{
	count_global(XGATE_STAT_NOT_TCP);
	return XDP_PASS;
}

static __always_inline int steer(struct xdp_md *ctx, struct xgate_stats *s,
				 enum xgate_stat why, int v6)
{
	int ret = bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);

	if (ret == XDP_REDIRECT) {
		count(s, XGATE_STAT_REDIRECTED);
		if (v6)
			count(s, XGATE_STAT_REDIRECTED_V6);
		count(s, why);
	} else {
		count(s, XGATE_STAT_NO_XSK);
		count(s, XGATE_STAT_PASSED);
	}
	return ret;
}

/*
 * ::ffff:0:0/96, the IPv4-mapped addresses, by 32-bit words in network order.
 * `user_flows` stores IPv4 addresses so (xgate.h): an IPv6 packet carrying one
 * would be looked up as an IPv4 flow. Linux drops such packets (ip6_rcv_core),
 * and so they are never steered.
 */
static __always_inline int ipv4_mapped(const __u32 *a)
{
	return (a[0] | a[1]) == 0 && a[2] == bpf_htonl(0xffff);
}

/*
 * Whether every option of a Hop-by-Hop or Destination Options header is one a
 * node that does not recognise it may skip (RFC 8200 section 4.2: the type's
 * two high bits are 00; Pad1 and PadN are such options), and the options fill
 * the `left` bytes from `off` exactly: what core/src/wire/ipv6.rs accepts, so
 * that nothing it refuses is steered (it would be lost, where the kernel
 * answers it). More than XGATE_IPV6_MAX_OPTS options: refused.
 */
static __always_inline int ipv6_options_skippable(void *data, void *data_end, __u64 off,
						  __u32 left)
{
	for (int i = 0; i < XGATE_IPV6_MAX_OPTS; i++) {
		__u8 *opt = data + off;
		__u32 long_opt, step;

		if (left == 0)
			return 1;
		/*
		 * Two bytes even for a Pad1, which has no length byte: the one after
		 * it is in the packet when anything follows the header, and a packet
		 * that ends there carries no TCP header anyway.
		 */
		if ((void *)(opt + 2) > data_end)
			return 0;
		if (opt[0] & 0xc0)
			return 0;
		/*
		 * The step without a branch (1 for Pad1, type 0; 2 + length for the
		 * others), so the verifier follows one path per option instead of
		 * two, which would double with each one. barrier_var keeps clang
		 * from turning the arithmetic back into a comparison.
		 */
		long_opt = (__u32)opt[0] + 255;
		barrier_var(long_opt);
		long_opt >>= 8;
		step = 1 + long_opt * ((__u32)opt[1] + 1);
		if (step > left)
			return 0;
		left -= step;
		off += step;
	}
	return left == 0;
}

/*
 * The IPv6 extension-header walk of core/src/wire/ipv6.rs (`upper_layer`),
 * bounded so that the verifier sees a fixed number of steps: Hop-by-Hop (only
 * right after the fixed header), Destination Options whose options may all be
 * skipped, and Routing with Segments Left 0 are looked through, at most
 * XGATE_IPV6_MAX_EXT of them. Returns the header after them, *off then at it:
 * the caller passes whatever is not TCP or ICMPv6 there (a Fragment header,
 * ESP, AH, No Next Header, an unknown header). -1, passed too: an option that
 * asks for a discard, segments left, a header past the frame's end, or a
 * longer chain.
 */
static __always_inline int ipv6_upper_layer(void *data, void *data_end, __u64 *off, __u8 next)
{
	__u64 o = *off;

	for (int i = 0; i < XGATE_IPV6_MAX_EXT; i++) {
		__u8 *h = data + o;
		__u64 len;

		if (next != IPPROTO_HOPOPTS && next != IPPROTO_DSTOPTS && next != IPPROTO_ROUTING)
			goto upper;
		if (next == IPPROTO_HOPOPTS && i != 0)
			return -1;
		/* Next Header, Hdr Ext Len, and at least six more bytes. */
		if ((void *)(h + 8) > data_end)
			return -1;
		len = ((__u64)h[1] + 1) * 8;
		if (next == IPPROTO_ROUTING) {
			/* Segments Left: 0 once the packet is at its final destination. */
			if (h[3] != 0)
				return -1;
		} else if (!ipv6_options_skippable(data, data_end, o + 2, len - 2)) {
			return -1;
		}
		next = h[0];
		o += len;
	}
	if (next == IPPROTO_HOPOPTS || next == IPPROTO_DSTOPTS || next == IPPROTO_ROUTING)
		return -1;
upper:
	*off = o;
	return next;
}

/*
 * Whether the listener the kernel's lookup found is the gateway's: the family
 * and bound address sock_ops recorded in its tag. (A socket cookie would be
 * exact, but XDP cannot read one; two listeners of one family and address on
 * one port need SO_REUSEPORT, which the gateway does not set.)
 */
static __always_inline int is_gateway_listener(struct bpf_sock *sk,
					       struct xgate_listener *l)
{
	if (sk->family != l->family)
		return 0;
	if (sk->family == AF_INET)
		return sk->src_ip4 == l->addr[0];
	return sk->src_ip6[0] == l->addr[0] && sk->src_ip6[1] == l->addr[1] &&
	       sk->src_ip6[2] == l->addr[2] && sk->src_ip6[3] == l->addr[3];
}

/*
 * Whether the segment's destination is an address of this host, as the kernel's
 * routing would decide before any socket saw it: the FIB's answer for a local
 * destination is "not forwarded". With forwarding off on the interface the FIB
 * lookup cannot say (FWD_DISABLED), and the kernel drops what is not local in
 * that case anyway: treated as local, as before this check. A subnet's
 * directed broadcast address is "not forwarded" too and cannot be told apart.
 */
static __always_inline int is_local_destination(struct xdp_md *ctx, struct xgate_flow *flow,
						int v6)
{
	struct bpf_fib_lookup fib = {};
	long ret;

	/*
	 * Multicast and broadcast destinations are "not forwarded" to the FIB as
	 * local ones are, and the kernel's TCP drops them: never the bypass's.
	 * IPv4 224.0.0.0/4 and 240.0.0.0/4 (255.255.255.255 among them), IPv6
	 * ff00::/8.
	 */
	if (v6 ? (bpf_ntohl(flow->local_ip[0]) >> 24) == 0xff
	       : (bpf_ntohl(flow->local_ip[3]) >> 28) >= 0xe)
		return 0;

	fib.ifindex = ctx->ingress_ifindex;
	fib.l4_protocol = IPPROTO_TCP;
	fib.sport = flow->remote_port;
	fib.dport = flow->local_port;
	if (v6) {
		fib.family = AF_INET6;
		__builtin_memcpy(fib.ipv6_src, flow->remote_ip, sizeof(fib.ipv6_src));
		__builtin_memcpy(fib.ipv6_dst, flow->local_ip, sizeof(fib.ipv6_dst));
	} else {
		fib.family = AF_INET;
		fib.ipv4_src = flow->remote_ip[3];
		fib.ipv4_dst = flow->local_ip[3];
	}
	ret = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	return ret == BPF_FIB_LKUP_RET_NOT_FWDED || ret == BPF_FIB_LKUP_RET_FWD_DISABLED;
}

/*
 * Rules 2 to 6 for a TCP segment whose `user_flows` key is `flow` (its tuple
 * for rule 3's lookup is made from the key, only when needed).
 */
static __always_inline int steer_tcp(struct xdp_md *ctx, struct tcphdr *tcp,
				     struct xgate_flow *flow, int v6)
{
	__u16 dport = bpf_ntohs(tcp->dest);
	struct xgate_stats *s = bpf_map_lookup_elem(&stats, &dport);
	struct xgate_listener *l;
	__u32 *state;

	/* Rule 2: a connection user space owns, whatever the port's state. */
	if (bpf_map_lookup_elem(&user_flows, flow))
		return steer(ctx, s, XGATE_STAT_USER_FLOW, v6);

	/*
	 * Rules 4 and 5 need a port that is on or draining and that the gateway
	 * listens on; when it is not, every remaining rule ends in PASS, so the
	 * socket lookup of rule 3 is skipped. Whether the listener takes this
	 * segment's family and address, rule 3a's lookup says.
	 */
	state = bpf_map_lookup_elem(&ports, &dport);
	if (!state || *state == XGATE_PORT_OFF)
		goto pass;
	l = bpf_map_lookup_elem(&listeners, &dport);
	if (!l)
		goto pass;

	/*
	 * Rule 3: the kernel owns the 4-tuple (established, SYN-RECV, TIME-WAIT...),
	 * or no listener serves the destination address (3a).
	 */
	struct bpf_sock_tuple tuple = {};
	struct bpf_sock *sk;

	if (v6) {
		__builtin_memcpy(tuple.ipv6.saddr, flow->remote_ip, sizeof(tuple.ipv6.saddr));
		__builtin_memcpy(tuple.ipv6.daddr, flow->local_ip, sizeof(tuple.ipv6.daddr));
		tuple.ipv6.sport = flow->remote_port;
		tuple.ipv6.dport = flow->local_port;
		sk = bpf_skc_lookup_tcp(ctx, &tuple, sizeof(tuple.ipv6), BPF_F_CURRENT_NETNS, 0);
	} else {
		tuple.ipv4.saddr = flow->remote_ip[3];
		tuple.ipv4.daddr = flow->local_ip[3];
		tuple.ipv4.sport = flow->remote_port;
		tuple.ipv4.dport = flow->local_port;
		sk = bpf_skc_lookup_tcp(ctx, &tuple, sizeof(tuple.ipv4), BPF_F_CURRENT_NETNS, 0);
	}
	/*
	 * No socket at all: no listener serves this destination address (a
	 * listen_addr that is another address, or the other family), so the kernel
	 * path would refuse the connection; the bypass must not take it either.
	 */
	if (!sk) {
		count(s, XGATE_STAT_NO_LISTENER);
		goto pass;
	}
	{
		__u32 sk_state = sk->state;
		int ours = is_gateway_listener(sk, l);

		bpf_sk_release(sk);
		if (sk_state != BPF_TCP_LISTEN) {
			count(s, XGATE_STAT_KERNEL_OWNED);
			goto pass;
		}
		/* A listener, but another process's: its connections are its own. */
		if (!ours) {
			count(s, XGATE_STAT_NO_LISTENER);
			goto pass;
		}
	}

	/*
	 * Rule 3b: a wildcard listener matches any destination address, where the
	 * kernel would first route the packet (forward it, or drop it) unless the
	 * address is the host's: only segments to a local address are the bypass's.
	 */
	if (!is_local_destination(ctx, flow, v6)) {
		count(s, XGATE_STAT_NOT_LOCAL);
		goto pass;
	}

	if (tcp->syn && !tcp->ack) {
		/* Rule 4: a pure SYN to a port that is on; no map write. */
		if (*state == XGATE_PORT_ON && !tcp->rst && !tcp->fin)
			return steer(ctx, s, XGATE_STAT_SYN_STEERED, v6);
		/* New connections on a draining port belong to the kernel. */
		goto pass;
	}

	/* Rule 5: other segments of unknown flows (SYN-cookie ACKs) on on/draining. */
	if (*state == XGATE_PORT_ON || *state == XGATE_PORT_DRAINING)
		return steer(ctx, s, XGATE_STAT_UNKNOWN_STEERED, v6);

pass:
	/* Rule 6. */
	count(s, XGATE_STAT_PASSED);
	return XDP_PASS;
}

/*
 * Rule 1a: an ICMP error about a packet the gateway sent on a bypass
 * connection, whose quoted header gives `flow` (quoted source = local). The
 * kernel has no socket for it; the connection's poller has.
 */
static __always_inline int steer_icmp(struct xdp_md *ctx, struct xgate_flow *flow, int v6)
{
	__u16 port;

	if (!bpf_map_lookup_elem(&user_flows, flow))
		return not_tcp();
	port = bpf_ntohs(flow->local_port);
	return steer(ctx, bpf_map_lookup_elem(&stats, &port), XGATE_STAT_ICMP_STEERED, v6);
}

/* Rule 1a over IPv4: "fragmentation needed" (RFC 1191) quoting a TCP segment. */
static __always_inline int xdp_icmp4(struct xdp_md *ctx, void *data_end, struct icmp_err *icmp)
{
	struct iphdr *q = (void *)(icmp + 1);
	__be16 *ports;
	__u32 ihl;

	if ((void *)(q + 1) > data_end)
		return not_tcp();
	if (icmp->type != ICMP_DEST_UNREACH || icmp->code != ICMP_FRAG_NEEDED)
		return not_tcp();
	ihl = q->ihl * 4;
	/* A quoted later fragment starts with no TCP header. */
	if (q->version != 4 || ihl < sizeof(*q) || q->protocol != IPPROTO_TCP ||
	    (q->frag_off & bpf_htons(IP_OFFSET)))
		return not_tcp();
	ports = (void *)q + ihl;
	if ((void *)(ports + 2) > data_end)
		return not_tcp();

	struct xgate_flow flow = {
		.local_ip = { 0, 0, bpf_htonl(0xffff), q->saddr },
		.remote_ip = { 0, 0, bpf_htonl(0xffff), q->daddr },
		.local_port = ports[0],
		.remote_port = ports[1],
	};
	return steer_icmp(ctx, &flow, 0);
}

/* Rule 1a over IPv6: "packet too big" (RFC 8201) quoting a TCP segment. */
static __always_inline int xdp_icmp6(struct xdp_md *ctx, void *data_end, struct icmp_err *icmp)
{
	struct ipv6hdr *q = (void *)(icmp + 1);
	__be16 *ports = (void *)(q + 1);
	struct xgate_flow flow;

	if ((void *)(ports + 2) > data_end)
		return not_tcp();
	/* The gateway sends no extension headers: TCP follows the fixed header. */
	if (icmp->type != ICMPV6_PKT_TOOBIG || q->version != 6 ||
	    q->nexthdr != IPPROTO_TCP)
		return not_tcp();
	if (ipv4_mapped(q->saddr.in6_u.u6_addr32) || ipv4_mapped(q->daddr.in6_u.u6_addr32))
		return not_tcp();
	__builtin_memcpy(flow.local_ip, &q->saddr, sizeof(flow.local_ip));
	__builtin_memcpy(flow.remote_ip, &q->daddr, sizeof(flow.remote_ip));
	flow.local_port = ports[0];
	flow.remote_port = ports[1];
	return steer_icmp(ctx, &flow, 1);
}

static __always_inline int xdp_ipv4(struct xdp_md *ctx, void *data, void *data_end, __u64 off)
{
	struct iphdr *ip = data + off;
	struct tcphdr *tcp;
	__u32 ihl;

	if ((void *)(ip + 1) > data_end)
		return not_tcp();
	ihl = ip->ihl * 4;
	if (ip->version != 4 || ihl < sizeof(*ip))
		return not_tcp();
	/* Fragments -> PASS: only the first carries ports, the kernel reassembles. */
	if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return not_tcp();
	if (ip->protocol == IPPROTO_ICMP)
		return xdp_icmp4(ctx, data_end, (void *)ip + ihl);
	if (ip->protocol != IPPROTO_TCP)
		return not_tcp();
	tcp = (void *)ip + ihl;
	if ((void *)(tcp + 1) > data_end)
		return not_tcp();

	struct xgate_flow flow = {
		.local_ip = { 0, 0, bpf_htonl(0xffff), ip->daddr },
		.remote_ip = { 0, 0, bpf_htonl(0xffff), ip->saddr },
		.local_port = tcp->dest,
		.remote_port = tcp->source,
	};
	return steer_tcp(ctx, tcp, &flow, 0);
}

static __always_inline int xdp_ipv6(struct xdp_md *ctx, void *data, void *data_end, __u64 off)
{
	struct ipv6hdr *ip6 = data + off;
	struct xgate_flow flow;
	struct tcphdr *tcp;
	int proto;

	if ((void *)(ip6 + 1) > data_end || ip6->version != 6)
		return not_tcp();
	if (ipv4_mapped(ip6->saddr.in6_u.u6_addr32) || ipv4_mapped(ip6->daddr.in6_u.u6_addr32))
		return not_tcp();
	off += sizeof(*ip6);
	proto = ipv6_upper_layer(data, data_end, &off, ip6->nexthdr);
	if (proto == IPPROTO_ICMPV6)
		return xdp_icmp6(ctx, data_end, data + off);
	if (proto != IPPROTO_TCP)
		return not_tcp();
	tcp = data + off;
	if ((void *)(tcp + 1) > data_end)
		return not_tcp();

	__builtin_memcpy(flow.local_ip, &ip6->daddr, sizeof(flow.local_ip));
	__builtin_memcpy(flow.remote_ip, &ip6->saddr, sizeof(flow.remote_ip));
	flow.local_port = tcp->dest;
	flow.remote_port = tcp->source;
	return steer_tcp(ctx, tcp, &flow, 1);
}

SEC("xdp")
int xgate_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u16 h_proto;
	__u64 off;

	/*
	 * Rule 1: TCP over IPv4 or IPv6 goes on to the other rules, and so do the
	 * ICMP errors of rule 1a; the rest passes. One 802.1Q tag is looked
	 * through.
	 */
	off = sizeof(*eth);
	if (data + off > data_end)
		return XDP_PASS;
	h_proto = eth->h_proto;
	if (h_proto == bpf_htons(ETH_P_8021Q)) {
		if (data + off + VLAN_HLEN > data_end)
			return XDP_PASS;
		h_proto = *(__be16 *)(data + off + 2);
		off += VLAN_HLEN;
	}
	if (h_proto == bpf_htons(ETH_P_IP))
		return xdp_ipv4(ctx, data, data_end, off);
	if (h_proto == bpf_htons(ETH_P_IPV6))
		return xdp_ipv6(ctx, data, data_end, off);
	return not_tcp();
}

SEC("sockops")
int xgate_sockops(struct bpf_sock_ops *skops)
{
	__u16 port = (__u16)skops->local_port; /* host byte order */
	struct xgate_listener *cur;
	struct xgate_stats zero = {};
	struct xgate_stats *s;

	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_LISTEN_CB: {
		/*
		 * Every TCP listener of the cgroup: AF_INET, and AF_INET6 whether
		 * dual-stack ([::], IPV6_V6ONLY=0) or v6-only; both report AF_INET6,
		 * and local_port is the port in either case.
		 */
		struct xgate_listener l = {
			.cookie = bpf_get_socket_cookie(skops),
			.family = skops->family,
		};

		if (skops->family == AF_INET6) {
			l.addr[0] = skops->local_ip6[0];
			l.addr[1] = skops->local_ip6[1];
			l.addr[2] = skops->local_ip6[2];
			l.addr[3] = skops->local_ip6[3];
		} else {
			l.addr[0] = skops->local_ip4;
		}

		bpf_map_update_elem(&listeners, &port, &l, BPF_ANY);
		/* Counters for the port; keeps existing ones. */
		bpf_map_update_elem(&stats, &port, &zero, BPF_NOEXIST);
		/* Ask for state changes so the listener's close removes the tag. */
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags |
						 BPF_SOCK_OPS_STATE_CB_FLAG);
		break;
	}
	case BPF_SOCK_OPS_STATE_CB:
		/* args[0]: old state, args[1]: new state. */
		if (skops->args[0] != BPF_TCP_LISTEN)
			break;
		cur = bpf_map_lookup_elem(&listeners, &port);
		/* Only the socket that set the tag removes it. */
		if (cur && cur->cookie == bpf_get_socket_cookie(skops))
			bpf_map_delete_elem(&listeners, &port);
		break;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		s = bpf_map_lookup_elem(&stats, &port);
		count(s, XGATE_STAT_KERNEL_CONNS);
		/*
		 * A dual-stack listener's IPv4 clients are AF_INET6 sockets too, with an
		 * IPv4-mapped peer (::ffff:a.b.c.d): only the others are IPv6 clients.
		 */
		if (skops->family == AF_INET6 &&
		    !(skops->remote_ip6[0] == 0 && skops->remote_ip6[1] == 0 &&
		      skops->remote_ip6[2] == bpf_htonl(0xffff)))
			count(s, XGATE_STAT_KERNEL_CONNS_V6);
		break;
	default:
		break;
	}
	return 1;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
