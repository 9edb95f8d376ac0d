// rba's eBPF tracepoint programs, compiled by bcc at load time.
//
// Rules that keep this portable across the kernel headers bcc happens to find:
// - tracepoints only (no kprobes on our machines);
// - read tracepoint arguments, BPF helpers and user memory (ABI-stable sockaddr and
//   msghdr layouts) only: NEVER dereference a kernel struct, whose layout differs
//   between the headers and the running kernel;
// - literal protocol numbers (IPPROTO_* are not defined here).
//
// Events go to one BPF ring buffer. A failed reserve is counted in the per-CPU array
// `lost`, so user space can state exactly how many events it did not get.

#include <uapi/linux/ptrace.h>

// bpf_probe_read_user under another name. bcc rewrites every call it sees by that name
// after checking /proc/kallsyms for the helper, which it reads whole for each call site
// (about 30 ms each, half of the compile time). Every kernel with a BPF ring buffer (5.8+,
// which we require) has the helper, so the check can only say yes.
static long (*read_user)(void *dst, u32 size, const void *unsafe_ptr) =
    (void *)BPF_FUNC_probe_read_user;

#ifndef RBA_RINGBUF_PAGES
#define RBA_RINGBUF_PAGES 4096
#endif

// rba_event layout begin (must match probes/events.py EVENT_DTYPE byte for byte)
struct rba_event {
    u64 ts_mono;
    u64 ts_wall;
    u64 sock;
    u64 aux;
    u32 pid;
    u32 ppid;
    u32 uid;
    u32 euid;
    u32 netns;
    u32 str_a;
    u32 str_b;
    u32 str_c;
    u16 sport;
    u16 dport;
    u8 kind;
    u8 source;
    u8 family;
    u8 flags;
    u8 saddr[16];
    u8 daddr[16];
    char comm[16];
};
// rba_event layout end

#define RBA_PATH_LEN 256

// An exec record: the event, then the exec'd filename (user space interns it into str_a).
struct rba_exec {
    struct rba_event ev;
    char filename[RBA_PATH_LEN];
};

// Values of probes.events.Kind / Flag / Family / Source.
#define K_EXEC 1
#define K_FORK 2
#define K_EXIT 3
#define K_TCP_CONNECT 4
#define K_TCP_ESTABLISHED 5
#define K_TCP_LISTEN 6
#define K_TCP_CLOSE 7
#define K_UDP_SEND 8
#define F_ACTIVE 1
#define F_PASSIVE 2
#define F_LISTENER 8
#define FAM_INET 4
#define FAM_INET6 6
#define SRC_EBPF 1

// Kernel constants (stable UAPI values).
#define AF_INET_ 2
#define AF_INET6_ 10
#define TCP_ESTABLISHED_ 1
#define TCP_SYN_SENT_ 2
#define TCP_SYN_RECV_ 3
#define TCP_CLOSE_ 7
#define TCP_LISTEN_ 10
#define PROTO_TCP 6
#define PROTO_UDP 17
#define SOCK_STREAM_ 1
#define SOCK_DGRAM_ 2
#define MSG_FASTOPEN_ 0x20000000
#define CLONE_THREAD_ 0x00010000

// Ring buffer submit flags: high-rate events do not wake the reader, which drains on a
// short timer anyway (cheaper bursts); exec wakes it at once, so /proc is read in time.
#define RB_NO_WAKEUP 1
#define RB_FORCE_WAKEUP 2

// What an inet fd is, from socket()/accept4() seen in the window.
#define FD_UDP 1
#define FD_OTHER 2

BPF_RINGBUF_OUTPUT(events, RBA_RINGBUF_PAGES);
BPF_PERCPU_ARRAY(lost, u64, 1);
// Every reserve attempted, so delivered + lost == attempted can be checked exactly.
BPF_PERCPU_ARRAY(attempts, u64, 1);

// tgid -> parent tgid, learnt from forks (exec reports it; user space fills the rest).
BPF_TABLE("lru_hash", u32, u32, parent_of, 65536);
// tid -> clone flags of its clone()/clone3() in flight (to tell threads from processes).
BPF_TABLE("lru_hash", u32, u64, clone_flags, 4096);
// tgid -> exit_group() status.
BPF_TABLE("lru_hash", u32, int, exit_codes, 4096);
// tid -> socket() arguments in flight; (tgid << 32 | fd) -> FD_UDP or FD_OTHER.
BPF_TABLE("lru_hash", u32, u32, socket_args, 4096);
BPF_TABLE("lru_hash", u64, u8, fd_kind, 65536);

// window[0] is 1 while a window is open. The programs stay attached from load until a
// background detach after the window (each detach waits for an RCU grace period, about
// 50 ms a tracepoint), and do nothing while it is 0: so neither opening nor closing a
// window waits on the kernel, and user space can close the gate, let the runs in flight
// finish, and read counters that nothing changes any more.
BPF_ARRAY(window, u32, 1);

static __always_inline int window_closed(void) {
    int zero = 0;
    u32 *open = window.lookup(&zero);
    return !open || !*open;
}

static __always_inline void count_attempt(void) {
    int zero = 0;
    u64 *n = attempts.lookup(&zero);
    if (n)
        (*n)++;
}

static __always_inline void count_lost(void) {
    int zero = 0;
    u64 *n = lost.lookup(&zero);
    if (n)
        (*n)++;
}

static __always_inline void fill_task(struct rba_event *ev, u8 kind) {
    __builtin_memset(ev, 0, sizeof(*ev));
    ev->ts_mono = bpf_ktime_get_ns();
    ev->kind = kind;
    ev->source = SRC_EBPF;
    ev->pid = bpf_get_current_pid_tgid() >> 32;
    ev->uid = (u32)bpf_get_current_uid_gid();
    bpf_get_current_comm(&ev->comm, sizeof(ev->comm));
}

static __always_inline struct rba_event *reserve_task(u8 kind) {
    count_attempt();
    struct rba_event *ev = events.ringbuf_reserve(sizeof(struct rba_event));
    if (!ev) {
        count_lost();
        return 0;
    }
    fill_task(ev, kind);
    return ev;
}

// ---- processes ---------------------------------------------------------------------

TRACEPOINT_PROBE(sched, sched_process_exec) {
    if (window_closed())
        return 0;
    count_attempt();
    struct rba_exec *rec = events.ringbuf_reserve(sizeof(struct rba_exec));
    if (!rec) {
        count_lost();
        return 0;
    }
    fill_task(&rec->ev, K_EXEC);
    u32 tgid = rec->ev.pid;
    u32 old = args->old_pid;
    u32 *parent = parent_of.lookup(&old);
    if (!parent)
        parent = parent_of.lookup(&tgid);
    if (parent)
        rec->ev.ppid = *parent;
    unsigned short off = args->data_loc_filename & 0xFFFF;
    rec->filename[0] = 0;
    bpf_probe_read_kernel_str(rec->filename, sizeof(rec->filename), (char *)args + off);
    events.ringbuf_submit(rec, RB_FORCE_WAKEUP);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_clone) {
    if (window_closed())
        return 0;
    u32 tid = (u32)bpf_get_current_pid_tgid();
    u64 flags = args->clone_flags;
    clone_flags.update(&tid, &flags);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_clone3) {
    if (window_closed())
        return 0;
    u32 tid = (u32)bpf_get_current_pid_tgid();
    u64 flags = 0;
    // struct clone_args starts with the u64 flags (UAPI).
    read_user(&flags, sizeof(flags), (void *)args->uargs);
    clone_flags.update(&tid, &flags);
    return 0;
}

TRACEPOINT_PROBE(sched, sched_process_fork) {
    if (window_closed())
        return 0;
    u64 id = bpf_get_current_pid_tgid();
    u32 tid = (u32)id;
    u64 *flags = clone_flags.lookup(&tid);
    int thread = flags && (*flags & CLONE_THREAD_);
    if (flags)
        clone_flags.delete(&tid);
    if (thread)
        return 0;
    u32 child = args->child_pid;
    u32 ptgid = id >> 32;
    parent_of.update(&child, &ptgid);
    struct rba_event *ev = reserve_task(K_FORK);
    if (!ev)
        return 0;
    ev->pid = child;
    ev->ppid = ptgid;
    events.ringbuf_submit(ev, RB_NO_WAKEUP);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_exit_group) {
    if (window_closed())
        return 0;
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    int code = args->error_code;
    exit_codes.update(&tgid, &code);
    return 0;
}

TRACEPOINT_PROBE(sched, sched_process_exit) {
    if (window_closed())
        return 0;
    u64 id = bpf_get_current_pid_tgid();
    u32 tgid = id >> 32;
    if ((u32)id != tgid)
        return 0;  // a thread, not the process
    struct rba_event *ev = reserve_task(K_EXIT);
    parent_of.delete(&tgid);
    int *code = exit_codes.lookup(&tgid);
    if (ev && code)
        ev->aux = (u32)*code;
    if (code)
        exit_codes.delete(&tgid);
    if (ev)
        events.ringbuf_submit(ev, RB_NO_WAKEUP);
    return 0;
}

// ---- TCP state -----------------------------------------------------------------------

TRACEPOINT_PROBE(sock, inet_sock_set_state) {
    if (window_closed())
        return 0;
    if (args->protocol != PROTO_TCP)
        return 0;
    int newstate = args->newstate;
    int oldstate = args->oldstate;
    u8 kind = 0, flags = 0, process_context = 0;
    if (newstate == TCP_SYN_SENT_) {
        kind = K_TCP_CONNECT;
        process_context = 1;
    } else if (newstate == TCP_LISTEN_) {
        kind = K_TCP_LISTEN;
        process_context = 1;
    } else if (newstate == TCP_ESTABLISHED_ && oldstate == TCP_SYN_SENT_) {
        kind = K_TCP_ESTABLISHED;
        flags = F_ACTIVE;
    } else if (newstate == TCP_ESTABLISHED_ && oldstate == TCP_SYN_RECV_) {
        kind = K_TCP_ESTABLISHED;
        flags = F_PASSIVE;
    } else if (newstate == TCP_CLOSE_) {
        kind = K_TCP_CLOSE;
        if (oldstate == TCP_LISTEN_)
            flags = F_LISTENER;
    } else {
        return 0;
    }
    count_attempt();
    struct rba_event *ev = events.ringbuf_reserve(sizeof(struct rba_event));
    if (!ev) {
        count_lost();
        return 0;
    }
    if (process_context) {
        fill_task(ev, kind);
    } else {
        // softirq or another task's context: pid/comm are not ours to report; user space
        // attributes the event by socket id or by the listener's port.
        __builtin_memset(ev, 0, sizeof(*ev));
        ev->ts_mono = bpf_ktime_get_ns();
        ev->kind = kind;
        ev->source = SRC_EBPF;
    }
    ev->flags = flags;
    ev->sock = (u64)args->skaddr;
    ev->sport = args->sport;
    ev->dport = args->dport;
    if (args->family == AF_INET_) {
        ev->family = FAM_INET;
        __builtin_memcpy(ev->saddr, args->saddr, 4);
        __builtin_memcpy(ev->daddr, args->daddr, 4);
    } else {
        ev->family = FAM_INET6;
        __builtin_memcpy(ev->saddr, args->saddr_v6, 16);
        __builtin_memcpy(ev->daddr, args->daddr_v6, 16);
    }
    events.ringbuf_submit(ev, RB_NO_WAKEUP);
    return 0;
}

// ---- UDP: socket types, sendto/sendmsg/connect with a remote -------------------------

TRACEPOINT_PROBE(syscalls, sys_enter_socket) {
    if (window_closed())
        return 0;
    int family = args->family;
    if (family != AF_INET_ && family != AF_INET6_)
        return 0;
    int type = args->type & 0xf;
    if (type == SOCK_STREAM_)
        return 0;  // TCP, the common case, stays unmarked: see sys_exit_socket
    int proto = args->protocol;
    u32 kind = (type == SOCK_DGRAM_ && (proto == 0 || proto == PROTO_UDP)) ? FD_UDP : FD_OTHER;
    u32 tid = (u32)bpf_get_current_pid_tgid();
    socket_args.update(&tid, &kind);
    return 0;
}

// A new datagram or raw socket on an fd: content state of what the fd was is stale (a
// TCP socket's connect() replaces it).
static __always_inline void content_new_socket(u64 key);

TRACEPOINT_PROBE(syscalls, sys_exit_socket) {
    if (window_closed())
        return 0;
    u64 id = bpf_get_current_pid_tgid();
    u32 tid = (u32)id;
    u64 key = (id & 0xffffffff00000000ULL) | (u32)args->ret;
    u32 *kind = socket_args.lookup(&tid);
    if (!kind) {
        // Not a datagram or raw inet socket: whatever the fd was marked is stale. Its
        // sends with an address are TCP Fast Open's, which emit_udp skips by flag. A
        // lookup first: it takes no lock, a delete that finds nothing does.
        if (args->ret >= 0 && fd_kind.lookup(&key))
            fd_kind.delete(&key);
        return 0;
    }
    u8 value = *kind;
    socket_args.delete(&tid);
    if (args->ret < 0)
        return 0;
    fd_kind.update(&key, &value);
    content_new_socket(key);  // a datagram socket must not write into a stale connection
    return 0;
}

// The UAPI layouts of sockaddr_in and sockaddr_in6 up to the IPv6 address.
struct inet_sockaddr {
    u16 family;
    u16 port_be;
    u8 v4[4];  // sockaddr_in6: flowinfo
    u8 v6[16];
};

// The remote endpoint of a sockaddr in user memory, read in one go: FAM_INET or
// FAM_INET6 with the port (host order) and address, or 0 when it is no inet address.
static __always_inline u8 read_inet_sockaddr(const void *uaddr, u64 len, u16 *port, u8 *daddr) {
    struct inet_sockaddr sa = {};
    if (!uaddr || len < 8 || read_user(&sa, len >= sizeof(sa) ? sizeof(sa) : 8, uaddr))
        return 0;
    *port = (sa.port_be >> 8) | ((sa.port_be & 0xff) << 8);
    if (sa.family == AF_INET_) {
        __builtin_memcpy(daddr, sa.v4, 4);
        return FAM_INET;
    }
    if (sa.family == AF_INET6_ && len >= sizeof(sa)) {
        __builtin_memcpy(daddr, sa.v6, 16);
        return FAM_INET6;
    }
    return 0;
}

// Content capture hooks (defined with the content programs at the end).
static __always_inline void content_accept_exit(s64 fd);
static __always_inline void content_connect_enter(u64 fd, const void *uaddr, u64 len, u8 kind);
static __always_inline void content_send(u64 fd, const void *uaddr, u64 addrlen,
                                         const void *buf, u64 len);
static __always_inline void content_sendmsg(u64 fd, const void *msg);
static __always_inline u8 udp_send_flags(u8 family, u16 port, const u8 *daddr);

TRACEPOINT_PROBE(syscalls, sys_exit_accept4) {
    if (window_closed())
        return 0;
    content_accept_exit(args->ret);
    if (args->ret < 0)
        return 0;
    u64 key = (bpf_get_current_pid_tgid() & 0xffffffff00000000ULL) | (u32)args->ret;
    u8 value = FD_OTHER;
    fd_kind.update(&key, &value);
    return 0;
}

static __always_inline u8 udp_fd_kind(u64 fd) {
    u64 key = (bpf_get_current_pid_tgid() & 0xffffffff00000000ULL) | (u32)fd;
    u8 *kind = fd_kind.lookup(&key);
    return kind ? *kind : 0;
}

// Emit UDP_SEND for an IPv4/IPv6 sockaddr in user memory. Sockets of unknown kind (made
// before the window) count as UDP for sendto/sendmsg, the only datagram sends with an
// inet address in practice; for connect they are skipped (TCP reports itself).
static __always_inline void emit_udp(const void *uaddr, u64 len, u8 unknown_is_udp, u8 kind) {
    if (!uaddr || kind == FD_OTHER || (kind == 0 && !unknown_is_udp))
        return;
    u16 port = 0;
    u8 daddr[16] = {};
    u8 family = read_inet_sockaddr(uaddr, len, &port, daddr);
    if (!family)
        return;
    u8 flags = udp_send_flags(family, port, daddr);
    struct rba_event *ev = reserve_task(K_UDP_SEND);
    if (!ev)
        return;
    ev->flags = flags;
    ev->family = family;
    ev->dport = port;
    __builtin_memcpy(ev->daddr, daddr, 16);
    events.ringbuf_submit(ev, RB_NO_WAKEUP);
}

TRACEPOINT_PROBE(syscalls, sys_enter_sendto) {
    if (window_closed())
        return 0;
    if (args->flags & MSG_FASTOPEN_)
        return 0;  // a TCP connect with its first bytes (reported as one)
    emit_udp((const void *)args->addr, args->addr_len, 1, udp_fd_kind(args->fd));
    content_send(args->fd, (const void *)args->addr, args->addr_len, (const void *)args->buff,
                 args->len);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_sendmsg) {
    if (window_closed())
        return 0;
    // struct user_msghdr (UAPI) starts with: void *msg_name; int msg_namelen.
    struct {
        void *name;
        int namelen;
    } head = {};
    if (args->flags & MSG_FASTOPEN_)
        return 0;  // a TCP connect with its first bytes (reported as one)
    content_sendmsg(args->fd, (const void *)args->msg);
    if (read_user(&head, sizeof(head), (void *)args->msg))
        return 0;
    emit_udp(head.name, head.namelen, 1, udp_fd_kind(args->fd));
    return 0;
}

// sendmmsg: struct mmsghdr (UAPI) starts with a user_msghdr, whose msg_name comes first.
// The first message's address stands for the batch (one UDP_SEND, as for sendmsg).
TRACEPOINT_PROBE(syscalls, sys_enter_sendmmsg) {
    if (window_closed())
        return 0;
    struct {
        void *name;
        int namelen;
    } head = {};
    if (!args->vlen || (args->flags & MSG_FASTOPEN_) || read_user(&head, sizeof(head), args->mmsg))
        return 0;
    emit_udp(head.name, head.namelen, 1, udp_fd_kind(args->fd));
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_connect) {
    if (window_closed())
        return 0;
    u8 kind = udp_fd_kind(args->fd);
    emit_udp((const void *)args->uservaddr, args->addrlen, 0, kind);
    content_connect_enter(args->fd, (const void *)args->uservaddr, args->addrlen, kind);
    return 0;
}

// A datagram socket made in the window bound to a local port: a UDP service, reported
// as TCP_LISTEN with aux 17 (docs/assess.md). Older sockets come from the start snapshot.
TRACEPOINT_PROBE(syscalls, sys_enter_bind) {
    if (window_closed())
        return 0;
    if ((udp_fd_kind(args->fd) & 3) != FD_UDP)
        return 0;
    u16 port = 0;
    u8 addr[16] = {};
    u8 family = read_inet_sockaddr((const void *)args->umyaddr, args->addrlen, &port, addr);
    if (!family || !port)
        return 0;
    struct rba_event *ev = reserve_task(K_TCP_LISTEN);
    if (!ev)
        return 0;
    ev->family = family;
    ev->sport = port;
    ev->aux = PROTO_UDP;
    __builtin_memcpy(ev->saddr, addr, 16);
    events.ringbuf_submit(ev, RB_NO_WAKEUP);
    return 0;
}

// ---- content: the first payloads of TCP connections and UDP datagrams ---------------
//
// Per monitored connection (a connect() or accept4() seen in the window), keyed by
// (tgid << 32 | fd): the first RBA_CLIENT_WRITES payloads the client sends (a STARTTLS
// upgrade needs the write after the command) and the first one the server sends, at most
// RBA_PAYLOAD_LEN bytes each, read from the user buffer of write/sendto/sendmsg (at enter)
// and read/recvfrom/recvmsg (at exit, with the returned length). The entry is deleted
// once both directions are done (or by user space once it has a final label), so a
// classified connection costs one failed hash lookup per syscall. Records go to their own
// ring buffer and never into an event: user space turns them into a label at once.

#ifndef RBA_CONTENT
#define RBA_CONTENT 1
#endif

#if !RBA_CONTENT
// No capture: the hooks do nothing, and neither the content-only programs nor their maps
// exist (probes/ebpf_program.py lists which those are).
static __always_inline void content_accept_exit(s64 fd) {}
static __always_inline void content_new_socket(u64 key) {}
static __always_inline void content_connect_enter(u64 fd, const void *uaddr, u64 len, u8 kind) {}
static __always_inline void content_send(u64 fd, const void *uaddr, u64 addrlen,
                                         const void *buf, u64 len) {}
static __always_inline void content_sendmsg(u64 fd, const void *msg) {}
static __always_inline u8 udp_send_flags(u8 family, u16 port, const u8 *daddr) { return 0; }
#else
#define RBA_PAYLOAD_LEN 64
#define RBA_CLIENT_WRITES 4
#define ROLE_ACTIVE 1
#define ROLE_PASSIVE 2
#define DIR_CLIENT 0
#define DIR_SERVER 1
#define EINPROGRESS_ 115
#define FD_KIND_MASK 3  // fd_kind values: FD_UDP or FD_OTHER, plus this bit
#define FD_DATAGRAM_SEEN 0x80

// payload layout begin (must match probes/content.py PAYLOAD_DTYPE)
struct rba_payload {
    u64 ts_mono;
    u64 conn;
    u32 pid;
    u32 uid;
    u32 fd;
    u16 dport;
    u8 family;
    u8 role;
    u8 dir;
    u8 len;
    u8 proto;
    u8 seq;
    u8 daddr[16];
    char comm[16];
    u8 data[RBA_PAYLOAD_LEN];
    u32 reserved;
};
// payload layout end

struct rba_conn {
    u64 id;
    u8 daddr[16];
    u16 dport;
    u8 family;
    u8 role;
    u8 sent;      // payloads captured from this side's writes
    u8 received;  // and from its reads
    u8 sent_max;
    u8 received_max;
};

struct rba_read {
    u64 key;
    u64 buf;
};

BPF_RINGBUF_OUTPUT(payloads, 256);  // 1 MiB: about 7,700 records
BPF_PERCPU_ARRAY(payloads_lost, u64, 1);
BPF_TABLE("lru_hash", u64, struct rba_conn, conns, 65536);  // stale ones age out
// The last connect() entered on each CPU, for its exit to undo a failed one.
struct rba_connecting {
    u32 tid;
    u64 key;
};
BPF_PERCPU_ARRAY(connecting, struct rba_connecting, 1);
BPF_TABLE("lru_hash", u32, u64, accepting, 4096);
BPF_TABLE("lru_hash", u32, struct rba_read, reading, 4096);
BPF_TABLE("lru_hash", u64, u8, datagram_seen, 16384);

// Who wrote first between this host and a UDP peer (docs/assess.md, "Server replies"):
// a datagram sent to a peer whose own datagram was received first is a server's reply,
// never a client's send. Filled by receives (the peer first) and sends (us first). Not
// per process: forking servers (in.tftpd) answer from a child that never received.
struct udp_peer {
    u16 port;
    u8 family;
    u8 pad;
    u8 addr[16];
};
#define PEER_FIRST 1
#define US_FIRST 2
BPF_TABLE("lru_hash", struct udp_peer, u8, udp_peers, 16384);
// tid -> the source-address and data buffers of a datagram receive in flight.
struct rba_recv_from {
    u64 addr;
    u64 buf;
};
BPF_TABLE("lru_hash", u32, struct rba_recv_from, receiving_from, 4096);

static __always_inline u64 fd_key(u64 fd) {
    return (bpf_get_current_pid_tgid() & 0xffffffff00000000ULL) | (u32)fd;
}

// The remote endpoint of an inet sockaddr in user memory; 0 when not inet.
static __always_inline int read_endpoint(const void *uaddr, u64 len, struct rba_conn *c) {
    c->family = read_inet_sockaddr(uaddr, len, &c->dport, c->daddr);
    return c->family != 0;
}

static __always_inline void emit_payload(struct rba_conn *c, u64 fd, u8 dir, u8 proto, u8 seq,
                                         const void *buf, u64 len) {
    if (!buf || (s64)len <= 0)
        return;
    struct rba_payload *rec = payloads.ringbuf_reserve(sizeof(struct rba_payload));
    if (!rec) {
        int zero = 0;
        u64 *n = payloads_lost.lookup(&zero);
        if (n)
            (*n)++;
        return;
    }
    __builtin_memset(rec, 0, sizeof(*rec));
    u32 n = len < RBA_PAYLOAD_LEN ? (u32)len : RBA_PAYLOAD_LEN;
    if (n > RBA_PAYLOAD_LEN)
        n = RBA_PAYLOAD_LEN;
    read_user(rec->data, n, buf);
    rec->len = n;
    rec->ts_mono = bpf_ktime_get_ns();
    rec->conn = c->id;
    rec->pid = bpf_get_current_pid_tgid() >> 32;
    rec->uid = (u32)bpf_get_current_uid_gid();
    rec->fd = (u32)fd;
    rec->dport = c->dport;
    rec->family = c->family;
    rec->role = c->role;
    rec->dir = dir;
    rec->proto = proto;
    rec->seq = seq;
    __builtin_memcpy(rec->daddr, c->daddr, 16);
    bpf_get_current_comm(&rec->comm, sizeof(rec->comm));
    payloads.ringbuf_submit(rec, 0);
}

static __always_inline void conn_done_check(u64 key, struct rba_conn *c) {
    if (c->sent >= c->sent_max && c->received >= c->received_max)
        conns.delete(&key);
}

// A write on a monitored connection: the client's (ACTIVE) or the server's (PASSIVE).
static __always_inline void capture_write(u64 fd, const void *buf, u64 len) {
    u64 key = fd_key(fd);
    struct rba_conn *c = conns.lookup(&key);
    if (!c || c->sent >= c->sent_max || (s64)len <= 0)
        return;
    u8 dir = c->role == ROLE_ACTIVE ? DIR_CLIENT : DIR_SERVER;
    emit_payload(c, fd, dir, PROTO_TCP, c->sent, buf, len);
    c->sent++;
    conn_done_check(key, c);
}

static __always_inline void stash_read(u64 fd, u64 buf) {
    u64 key = fd_key(fd);
    struct rba_conn *c = conns.lookup(&key);
    if (!c || c->received >= c->received_max)
        return;
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct rba_read r = {.key = key, .buf = buf};
    reading.update(&tid, &r);
}

static __always_inline void capture_read(s64 ret) {
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct rba_read *r = reading.lookup(&tid);
    if (!r)
        return;
    u64 key = r->key;
    u64 buf = r->buf;
    reading.delete(&tid);
    if (ret <= 0)
        return;
    struct rba_conn *c = conns.lookup(&key);
    if (!c || c->received >= c->received_max)
        return;
    u8 dir = c->role == ROLE_ACTIVE ? DIR_SERVER : DIR_CLIENT;
    emit_payload(c, (u32)key, dir, PROTO_TCP, c->received, (const void *)buf, ret);
    c->received++;
    conn_done_check(key, c);
}

static __always_inline void udp_peer_key(struct udp_peer *k, u8 family, u16 port,
                                         const u8 *addr) {
    k->port = port;
    k->family = family;
    __builtin_memcpy(k->addr, addr, 16);
}

static __always_inline int peer_wrote_first(struct udp_peer *k) {
    u8 *first = udp_peers.lookup(k);
    return first && *first == PEER_FIRST;
}

// F_PASSIVE for a reply to a peer that wrote first; otherwise remember that we did.
static __always_inline u8 udp_send_flags(u8 family, u16 port, const u8 *daddr) {
    struct udp_peer k = {};
    udp_peer_key(&k, family, port, daddr);
    u8 *first = udp_peers.lookup(&k);
    if (first)
        return *first == PEER_FIRST ? F_PASSIVE : 0;
    u8 us = US_FIRST;
    udp_peers.update(&k, &us);
    return 0;
}

// A receive with a source address on a datagram (or pre-window) socket: stash it.
static __always_inline void stash_recv_from(u64 fd, u64 addr, u64 buf) {
    if (!addr || (udp_fd_kind(fd) & FD_KIND_MASK) == FD_OTHER)
        return;
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct rba_recv_from r = {.addr = addr, .buf = buf};
    receiving_from.update(&tid, &r);
}

// The first datagram received from a peer that had not heard from us: the peer wrote
// first, and its bytes (a request) are captured as a served client's (PASSIVE).
static __always_inline void capture_recv_from(s64 ret) {
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct rba_recv_from *r = receiving_from.lookup(&tid);
    if (!r)
        return;
    u64 addr = r->addr;
    u64 buf = r->buf;
    receiving_from.delete(&tid);
    if (ret <= 0)
        return;
    struct rba_conn c = {};
    if (!read_endpoint((const void *)addr, 28, &c))
        return;
    struct udp_peer k = {};
    udp_peer_key(&k, c.family, c.dport, c.daddr);
    u8 peer = PEER_FIRST;
    if (udp_peers.insert(&k, &peer))
        return;  // known peer: whoever wrote first stays
    c.role = ROLE_PASSIVE;
    emit_payload(&c, 0, DIR_CLIENT, PROTO_UDP, 0, (const void *)buf, ret);
}

// The first datagram a UDP socket sends to an address (sendto/sendmsg).
// Sockets made in the window are marked in fd_kind (a new socket on the same fd starts
// unmarked); older ones in datagram_seen.
static __always_inline void capture_datagram(u64 fd, const void *uaddr, u64 addrlen,
                                             const void *buf, u64 len) {
    if (!uaddr)
        return;
    u64 key = fd_key(fd);
    u8 *kind = fd_kind.lookup(&key);
    if (kind && ((*kind & FD_DATAGRAM_SEEN) || (*kind & FD_KIND_MASK) == FD_OTHER))
        return;
    if (!kind && datagram_seen.lookup(&key))
        return;
    struct rba_conn c = {};
    if (!read_endpoint(uaddr, addrlen, &c))
        return;
    struct udp_peer k = {};
    udp_peer_key(&k, c.family, c.dport, c.daddr);
    if (peer_wrote_first(&k))
        return;  // a server's reply: the request it answers was captured instead
    u8 one = 1;
    if (kind)
        *kind |= FD_DATAGRAM_SEEN;
    else
        datagram_seen.update(&key, &one);
    c.role = ROLE_ACTIVE;
    emit_payload(&c, fd, DIR_CLIENT, PROTO_UDP, 0, buf, len);
}

// Called from the existing connect/accept4 programs above.
static __always_inline void content_new_socket(u64 key) {
    if (conns.lookup(&key))  // lock-free, unlike a delete that finds nothing
        conns.delete(&key);
}

// connect() starts following the connection at once, replacing whatever the fd held,
// so that a successful connect (the common case) costs no stash and no map work at exit.
// The exit deletes the entry again if the connect failed, found through a per-CPU slot;
// a failed connect whose thread migrated while another connect used that CPU's slot
// leaves its entry until the LRU evicts it or the fd is reused by a socket, and a
// connect() repeated while the first is in progress (EALREADY) ends the capture.
// Every connect() claims the slot, followed or not: a successful connect leaves it set,
// so a later failed connect the thread does not follow (telnet's AF_UNIX one to nscd)
// would otherwise delete the followed connection.
static __always_inline void content_connect_enter(u64 fd, const void *uaddr, u64 len, u8 kind) {
    // The slot is looked up only once the tracepoint arguments are read: clang would
    // otherwise keep a ctx pointer plus offset across the lookup, which the verifier refuses.
    int zero = 0;
    struct rba_conn c = {};
    if ((kind & FD_KIND_MASK) == FD_UDP || !read_endpoint(uaddr, len, &c)) {
        struct rba_connecting *slot = connecting.lookup(&zero);
        if (slot)
            slot->tid = 0;
        return;
    }
    u64 key = fd_key(fd);
    c.id = bpf_ktime_get_ns();
    c.role = ROLE_ACTIVE;
    c.sent_max = RBA_CLIENT_WRITES;
    c.received_max = 1;
    conns.update(&key, &c);
    struct rba_connecting *slot = connecting.lookup(&zero);
    if (slot) {
        slot->tid = (u32)bpf_get_current_pid_tgid();
        slot->key = key;
    }
}

TRACEPOINT_PROBE(syscalls, sys_exit_connect) {
    if (window_closed())
        return 0;
    if (args->ret == 0 || args->ret == -EINPROGRESS_)
        return 0;
    int zero = 0;
    struct rba_connecting *slot = connecting.lookup(&zero);
    u32 tid = (u32)bpf_get_current_pid_tgid();
    if (slot && slot->tid == tid) {
        conns.delete(&slot->key);  // connect() has no fd in its exit arguments
        slot->tid = 0;
    }
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_accept4) {
    if (window_closed())
        return 0;
    u32 tid = (u32)bpf_get_current_pid_tgid();
    u64 peer = (u64)args->upeer_sockaddr;
    if (!peer)
        return 0;  // no peer address, no identity: the exit only drops a stale entry
    accepting.update(&tid, &peer);
    return 0;
}

static __always_inline void content_accept_exit(s64 fd) {
    u32 tid = (u32)bpf_get_current_pid_tgid();
    u64 *peer = accepting.lookup(&tid);
    const void *uaddr = peer ? (const void *)*peer : 0;
    if (peer)
        accepting.delete(&tid);
    if (fd < 0)
        return;
    u64 key = fd_key(fd);
    struct rba_conn c = {};
    if (!read_endpoint(uaddr, 28, &c)) {
        conns.delete(&key);  // what the fd was is stale; without the peer address (the
        return;              // connection's identity in user space) nothing is captured
    }
    c.id = bpf_ktime_get_ns();
    c.role = ROLE_PASSIVE;
    c.sent_max = 1;
    c.received_max = RBA_CLIENT_WRITES;
    conns.update(&key, &c);
}

TRACEPOINT_PROBE(syscalls, sys_enter_write) {
    if (window_closed())
        return 0;
    capture_write(args->fd, (const void *)args->buf, args->count);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_read) {
    if (window_closed())
        return 0;
    stash_read(args->fd, (u64)args->buf);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_read) {
    if (window_closed())
        return 0;
    capture_read(args->ret);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_recvfrom) {
    if (window_closed())
        return 0;
    stash_read(args->fd, (u64)args->ubuf);
    stash_recv_from(args->fd, (u64)args->addr, (u64)args->ubuf);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_recvfrom) {
    if (window_closed())
        return 0;
    capture_read(args->ret);
    capture_recv_from(args->ret);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_recvmsg) {
    if (window_closed())
        return 0;
    // struct user_msghdr (UAPI): name, namelen (+pad), iov, iovlen; iovec: base, len.
    u64 key = fd_key(args->fd);
    if (!conns.lookup(&key)) {
        struct {
            void *name;
            u64 namelen;
            void *iov;
        } head = {};
        if (read_user(&head, sizeof(head), (const void *)args->msg) || !head.name || !head.iov)
            return 0;
        u64 first = 0;
        read_user(&first, sizeof(first), head.iov);
        stash_recv_from(args->fd, (u64)head.name, first);
        return 0;
    }
    void *iov = 0;
    if (read_user(&iov, sizeof(iov), (const char *)args->msg + 16) || !iov)
        return 0;
    u64 base = 0;
    read_user(&base, sizeof(base), iov);
    stash_read(args->fd, base);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_recvmsg) {
    if (window_closed())
        return 0;
    capture_read(args->ret);
    capture_recv_from(args->ret);
    return 0;
}

// sendto/sendmsg payloads (TCP first writes, first UDP datagrams); from the programs above.
static __always_inline void content_send(u64 fd, const void *uaddr, u64 addrlen,
                                         const void *buf, u64 len) {
    u64 key = fd_key(fd);
    if (conns.lookup(&key))
        capture_write(fd, buf, len);
    else
        capture_datagram(fd, uaddr, addrlen, buf, len);
}

static __always_inline void content_sendmsg(u64 fd, const void *msg) {
    struct {
        void *name;
        int namelen;
        int pad;
        void *iov;
    } head = {};
    if (read_user(&head, sizeof(head), msg) || !head.iov)
        return;
    struct {
        void *base;
        u64 len;
    } iov = {};
    read_user(&iov, sizeof(iov), head.iov);
    content_send(fd, head.name, head.namelen, iov.base, iov.len);
}

#endif  // RBA_CONTENT
