/* delayq: hold every packet of an NFQUEUE queue for a fixed time, then accept it.
 *
 * The benchmark's `cdn` profile needs a real round trip (TCP handshakes, slow start, ACK
 * clocking), and this machine's kernel has no netem. run.py puts the simulator in a network
 * namespace reached over a veth pair, sends every packet in and out of that namespace to
 * queue N with iptables' NFQUEUE target, and runs this program in the namespace:
 *
 *     delayq QUEUE_NUM DELAY_MS
 *
 * The delay is the same for every packet, so a FIFO of packet ids is the whole schedule:
 * packets keep their order. Only metadata is copied to user space (NFQNL_COPY_META) and GSO
 * packets are taken whole (NFQA_CFG_F_GSO), so a 64 KiB TSO burst is one verdict, not 45:
 * the helper costs little CPU at 160 MB/s. FAIL_OPEN: if the queue ever overflows, packets
 * pass undelayed rather than being dropped (the count is printed on exit).
 *
 * Build: gcc -O2 -o delayq delayq.c -lnetfilter_queue   (libnetfilter-queue-dev)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <linux/netfilter.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define RING (1u << 20)

static uint32_t ids[RING];
static uint64_t due[RING];
static unsigned head, tail; /* ring indices: [head, tail) are held */
static uint64_t delay_ns, held_total, overflow;
static volatile sig_atomic_t stop;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int on_packet(struct nfq_q_handle *qh, struct nfgenmsg *msg, struct nfq_data *nfa, void *data) {
    (void)msg;
    (void)data;
    struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(nfa);
    if (!ph)
        return 0;
    uint32_t id = ntohl(ph->packet_id);
    if (tail - head >= RING) { /* cannot hold it: let it through now */
        overflow++;
        return nfq_set_verdict(qh, id, NF_ACCEPT, 0, NULL);
    }
    ids[tail % RING] = id;
    due[tail % RING] = now_ns() + delay_ns;
    tail++;
    held_total++;
    return 0;
}

static void on_signal(int sig) {
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s QUEUE_NUM DELAY_MS\n", argv[0]);
        return 2;
    }
    int qnum = atoi(argv[1]);
    delay_ns = (uint64_t)(atof(argv[2]) * 1e6);
    struct nfq_handle *h = nfq_open();
    if (!h) {
        perror("nfq_open");
        return 1;
    }
    struct nfq_q_handle *qh = nfq_create_queue(h, qnum, on_packet, NULL);
    if (!qh) {
        perror("nfq_create_queue");
        return 1;
    }
    if (nfq_set_mode(qh, NFQNL_COPY_META, 0) < 0) {
        perror("nfq_set_mode");
        return 1;
    }
    nfq_set_queue_maxlen(qh, RING);
    uint32_t flags = NFQA_CFG_F_GSO | NFQA_CFG_F_FAIL_OPEN;
    if (nfq_set_queue_flags(qh, flags, flags) < 0)
        perror("nfq_set_queue_flags (going on)");
    int fd = nfq_fd(h);
    int rcvbuf = 64 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf);
    int one = 1; /* ENOBUFS on overrun instead of silently lost messages */
    setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof one);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    printf("ready queue %d delay %.1f ms\n", qnum, delay_ns / 1e6);
    fflush(stdout);

    static char buf[1 << 16];
    while (!stop) {
        uint64_t t = now_ns();
        while (head != tail && due[head % RING] <= t) {
            nfq_set_verdict(qh, ids[head % RING], NF_ACCEPT, 0, NULL);
            head++;
        }
        struct timespec to = {1, 0};
        if (head != tail) {
            uint64_t wait = due[head % RING] - t;
            to.tv_sec = wait / 1000000000ull;
            to.tv_nsec = wait % 1000000000ull;
        }
        struct pollfd p = {fd, POLLIN, 0};
        int r = ppoll(&p, 1, &to, NULL);
        if (r < 0 && errno != EINTR) {
            perror("ppoll");
            break;
        }
        if (r > 0) {
            /* Drain what is there without blocking, then go back to the verdicts. */
            for (;;) {
                ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
                if (n < 0)
                    break;
                nfq_handle_packet(h, buf, (int)n);
            }
        }
    }
    /* Let everything still held through before going. */
    while (head != tail) {
        nfq_set_verdict(qh, ids[head % RING], NF_ACCEPT, 0, NULL);
        head++;
    }
    fprintf(stderr, "delayq: %llu packets held, %llu passed undelayed (queue full)\n",
            (unsigned long long)held_total, (unsigned long long)overflow);
    nfq_destroy_queue(qh);
    nfq_close(h);
    return 0;
}
