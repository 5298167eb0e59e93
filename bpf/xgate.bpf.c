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
#include <linux/ip.h>
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

static __always_inline int steer(struct xdp_md *ctx, struct xgate_stats *s,
				 enum xgate_stat why)
{
	int ret = bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);

	if (ret == XDP_REDIRECT) {
		count(s, XGATE_STAT_REDIRECTED);
		count(s, why);
	} else {
		count(s, XGATE_STAT_NO_XSK);
		count(s, XGATE_STAT_PASSED);
	}
	return ret;
}

SEC("xdp")
int xgate_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	struct tcphdr *tcp;
	struct xgate_stats *s;
	__u32 *state;
	__u16 h_proto, dport;
	__u32 ihl;
	__u64 off;

	/* Rule 1: not IPv4/TCP -> PASS (one 802.1Q tag is looked through). */
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
	if (h_proto != bpf_htons(ETH_P_IP))
		goto not_tcp;
	ip = data + off;
	if ((void *)(ip + 1) > data_end)
		goto not_tcp;
	ihl = ip->ihl * 4;
	if (ip->version != 4 || ihl < sizeof(*ip) || ip->protocol != IPPROTO_TCP)
		goto not_tcp;
	/* Fragments -> PASS: only the first carries ports, the kernel reassembles. */
	if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
		goto not_tcp;
	tcp = (void *)ip + ihl;
	if ((void *)(tcp + 1) > data_end)
		goto not_tcp;

	dport = bpf_ntohs(tcp->dest);
	s = bpf_map_lookup_elem(&stats, &dport);

	/* Rule 2: a connection user space owns, whatever the port's state. */
	struct xgate_flow flow = {
		.local_ip = { 0, 0, bpf_htonl(0xffff), ip->daddr },
		.remote_ip = { 0, 0, bpf_htonl(0xffff), ip->saddr },
		.local_port = tcp->dest,
		.remote_port = tcp->source,
	};
	if (bpf_map_lookup_elem(&user_flows, &flow))
		return steer(ctx, s, XGATE_STAT_USER_FLOW);

	/*
	 * Rules 4 and 5 need a port that is on or draining and that the gateway
	 * listens on; when it is not, every remaining rule ends in PASS, so the
	 * socket lookup of rule 3 is skipped.
	 */
	state = bpf_map_lookup_elem(&ports, &dport);
	if (!state || *state == XGATE_PORT_OFF || !bpf_map_lookup_elem(&listeners, &dport))
		goto pass;

	/* Rule 3: the kernel owns the 4-tuple (established, SYN-RECV, TIME-WAIT...). */
	struct bpf_sock_tuple tuple = {
		.ipv4 = {
			.saddr = ip->saddr,
			.daddr = ip->daddr,
			.sport = tcp->source,
			.dport = tcp->dest,
		},
	};
	struct bpf_sock *sk = bpf_skc_lookup_tcp(ctx, &tuple, sizeof(tuple.ipv4),
						 BPF_F_CURRENT_NETNS, 0);
	if (sk) {
		__u32 sk_state = sk->state;

		bpf_sk_release(sk);
		if (sk_state != BPF_TCP_LISTEN) {
			count(s, XGATE_STAT_KERNEL_OWNED);
			goto pass;
		}
	}

	if (tcp->syn && !tcp->ack) {
		/* Rule 4: a pure SYN to a port that is on; no map write. */
		if (*state == XGATE_PORT_ON && !tcp->rst && !tcp->fin)
			return steer(ctx, s, XGATE_STAT_SYN_STEERED);
		/* New connections on a draining port belong to the kernel. */
		goto pass;
	}

	/* Rule 5: other segments of unknown flows (SYN-cookie ACKs) on on/draining. */
	if (*state == XGATE_PORT_ON || *state == XGATE_PORT_DRAINING)
		return steer(ctx, s, XGATE_STAT_UNKNOWN_STEERED);

pass:
	/* Rule 6. */
	count(s, XGATE_STAT_PASSED);
	return XDP_PASS;

not_tcp:
	count_global(XGATE_STAT_NOT_TCP);
	return XDP_PASS;
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
		struct xgate_listener l = {
			.cookie = bpf_get_socket_cookie(skops),
			.family = skops->family,
		};

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
		break;
	default:
		break;
	}
	return 1;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
