/* Loopback TCP connect burst for bench/probe_burst.py.
 *
 *   probe_connect_burst PORT COUNT
 *
 * Forks an acceptor (accept + close) and connects COUNT times to 127.0.0.1:PORT as fast
 * as it can, each socket closed with SO_LINGER 0 (no TIME_WAIT, so repeated runs never
 * exhaust ephemeral ports). Prints "<client pid> <listener pid> <connects> <seconds>".
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s PORT COUNT\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]);
    long count = atol(argv[2]);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) || listen(lfd, 4096)) {
        perror("listen");
        return 1;
    }
    pid_t acceptor = fork();
    if (acceptor == 0) {
        for (long i = 0; i < count; i++) {
            int c = accept(lfd, NULL, NULL);
            if (c >= 0)
                close(c);
        }
        _exit(0);
    }
    close(lfd);
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    long ok = 0;
    double start = now();
    for (long i = 0; i < count; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0)
            ok++;
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(fd);
    }
    double elapsed = now() - start;
    int status;
    waitpid(acceptor, &status, 0);
    printf("%d %d %ld %.6f\n", (int)getpid(), (int)acceptor, ok, elapsed);
    return ok == count ? 0 : 1;
}
