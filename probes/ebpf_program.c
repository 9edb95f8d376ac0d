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
#define SOCK_DGRAM_ 2
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
    u32 tid = (u32)bpf_get_current_pid_tgid();
    u64 flags = args->clone_flags;
    clone_flags.update(&tid, &flags);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_clone3) {
    u32 tid = (u32)bpf_get_current_pid_tgid();
    u64 flags = 0;
    // struct clone_args starts with the u64 flags (UAPI).
    bpf_probe_read_user(&flags, sizeof(flags), (void *)args->uargs);
    clone_flags.update(&tid, &flags);
    return 0;
}

TRACEPOINT_PROBE(sched, sched_process_fork) {
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
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    int code = args->error_code;
    exit_codes.update(&tgid, &code);
    return 0;
}

TRACEPOINT_PROBE(sched, sched_process_exit) {
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
    int family = args->family;
    if (family != AF_INET_ && family != AF_INET6_)
        return 0;
    int type = args->type & 0xf;
    int proto = args->protocol;
    u32 kind = (type == SOCK_DGRAM_ && (proto == 0 || proto == PROTO_UDP)) ? FD_UDP : FD_OTHER;
    u32 tid = (u32)bpf_get_current_pid_tgid();
    socket_args.update(&tid, &kind);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_socket) {
    u64 id = bpf_get_current_pid_tgid();
    u32 tid = (u32)id;
    u32 *kind = socket_args.lookup(&tid);
    if (!kind)
        return 0;
    u8 value = *kind;
    socket_args.delete(&tid);
    if (args->ret < 0)
        return 0;
    u64 key = (id & 0xffffffff00000000ULL) | (u32)args->ret;
    fd_kind.update(&key, &value);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_accept4) {
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
static __always_inline void emit_udp(const void *uaddr, u64 len, u8 unknown_is_udp, u64 fd) {
    if (!uaddr || len < 8)
        return;
    u8 kind = udp_fd_kind(fd);
    if (kind == FD_OTHER || (kind == 0 && !unknown_is_udp))
        return;
    u16 family = 0;
    if (bpf_probe_read_user(&family, sizeof(family), uaddr))
        return;
    if (family != AF_INET_ && family != AF_INET6_)
        return;
    struct rba_event *ev = reserve_task(K_UDP_SEND);
    if (!ev)
        return;
    u16 port_be = 0;
    bpf_probe_read_user(&port_be, sizeof(port_be), (const char *)uaddr + 2);
    ev->dport = (port_be >> 8) | ((port_be & 0xff) << 8);
    if (family == AF_INET_) {
        ev->family = FAM_INET;
        bpf_probe_read_user(ev->daddr, 4, (const char *)uaddr + 4);
    } else {
        ev->family = FAM_INET6;
        bpf_probe_read_user(ev->daddr, 16, (const char *)uaddr + 8);
    }
    events.ringbuf_submit(ev, RB_NO_WAKEUP);
}

TRACEPOINT_PROBE(syscalls, sys_enter_sendto) {
    emit_udp((const void *)args->addr, args->addr_len, 1, args->fd);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_sendmsg) {
    // struct user_msghdr (UAPI) starts with: void *msg_name; int msg_namelen.
    struct {
        void *name;
        int namelen;
    } head = {};
    if (bpf_probe_read_user(&head, sizeof(head), (void *)args->msg))
        return 0;
    emit_udp(head.name, head.namelen, 1, args->fd);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_connect) {
    emit_udp((const void *)args->uservaddr, args->addrlen, 0, args->fd);
    return 0;
}
