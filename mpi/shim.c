/*
 * shoal-mpi-launch, compiled: the same program as mpi/shim.py (read its docstring first), in C.
 *
 *     shoal-mpi-launch [ssh options] [-x] [user@]HOST CMD...
 *
 * Hydra and PRRTE start one of these per MPI proxy instead of ssh. It finds HOST's agent in
 * SHOAL_MPI_AGENTS (host=ip:port,...), connects over TLS trusting only SHOAL_AGENT_CA_FILE and wanting
 * the name "shoal-node", sends a HELLO with the attempt's identity and secret (SHOAL_EXEC_SECRET) and
 * `/bin/sh -c "CMD..."`, then relays stdin, stdout and stderr until the EXIT frame, whose status it
 * exits with. 255 when refused, cut off or unable to connect; 1 without a host (as the Python one).
 * When this process dies, the connection closes and the agent kills the command.
 *
 * Why C: it starts once per proxy, and the Python one's start-up plus `import ssl` was most of an MPI
 * launch's overhead. The wire format is mpi/shim.py's "Wire format": frames of one kind byte, a
 * big-endian uint32 length (at most MAX_FRAME) and the payload. The agent builds this file with
 * `cc -O2 shim.c -lssl -lcrypto` (shoal.nodeagent.mpilauncher); tests run it against the real
 * exec port (tests/mpi/test_execport.py).
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define HELLO 'H'
#define STDIN_DATA 'I'
#define STDIN_EOF 'E'
#define STDOUT_DATA 'O'
#define STDERR_DATA 'R'
#define EXIT_FRAME 'X'
#define REFUSED 'F'

#define HEADER 5                 /* kind + uint32 length */
#define MAX_FRAME (1u << 20)     /* the largest frame either side accepts */
#define READ_SIZE (64 * 1024)    /* one read of stdin or of the socket */
#define NODE_TLS_NAME "shoal-node"
#define CONNECT_TIMEOUT_S 30     /* connect, handshake and hello, as the Python shim's socket timeout */
#define FAIL 255

/* ssh options that take a value; anything else starting with '-' is a flag. */
static const char SSH_OPTIONS_WITH_VALUE[] = "bcDEeFIiJLlmOopQRSWw";

static void say(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("shoal-mpi-launch: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ---- A growable byte buffer (the hello; never more than MAX_FRAME) ------------------------------ */

typedef struct {
    char *data;
    size_t len, cap;
} Buf;

static int buf_put(Buf *b, const void *p, size_t n) {
    if (b->len + n > MAX_FRAME) return -1;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n) cap *= 2;
        char *d = realloc(b->data, cap);
        if (d == NULL) return -1;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

static int buf_str(Buf *b, const char *s) { return buf_put(b, s, strlen(s)); }

/* Length of the valid UTF-8 sequence at s (of n bytes), or 0 when it is not one. */
static size_t utf8_len(const unsigned char *s, size_t n) {
    size_t len;
    uint32_t cp;
    if (s[0] < 0x80) return 1;
    if (s[0] >= 0xC2 && s[0] <= 0xDF) { len = 2; cp = s[0] & 0x1F; }
    else if (s[0] >= 0xE0 && s[0] <= 0xEF) { len = 3; cp = s[0] & 0x0F; }
    else if (s[0] >= 0xF0 && s[0] <= 0xF4) { len = 4; cp = s[0] & 0x07; }
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    return len;
}

/* s as a JSON string. Bytes that are not UTF-8 become \udcXX, as Python's argv decoding
 * (surrogateescape) and json.dumps make them, so the agent runs the very bytes given here. */
static int json_string(Buf *b, const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    char esc[8];
    if (buf_str(b, "\"")) return -1;
    while (n > 0) {
        size_t len = utf8_len(p, n);
        if (len == 0) {
            snprintf(esc, sizeof esc, "\\udc%02x", p[0]);
            len = 1;
            if (buf_str(b, esc)) return -1;
        } else if (*p == '"' || *p == '\\') {
            esc[0] = '\\', esc[1] = (char)*p;
            if (buf_put(b, esc, 2)) return -1;
        } else if (*p < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *p);
            if (buf_str(b, esc)) return -1;
        } else if (buf_put(b, p, len)) {
            return -1;
        }
        p += len;
        n -= len;
    }
    return buf_str(b, "\"");
}

/* ---- Arguments and environment ------------------------------------------------------------------ */

/* The index of HOST in argv (ssh-style options skipped), or -1. */
static int host_index(int argc, char **argv) {
    int i = 1;
    while (i < argc && argv[i][0] == '-' && argv[i][1] != '\0') {
        int takes_value = argv[i][2] == '\0' && strchr(SSH_OPTIONS_WITH_VALUE, argv[i][1]) != NULL;
        i += 1 + takes_value;
    }
    return i < argc ? i : -1;
}

/* A copy of s[0..n) without surrounding spaces (as Python's str.strip()). */
static char *strip_dup(const char *s, size_t n) {
    while (n > 0 && (*s == ' ' || (*s >= '\t' && *s <= '\r'))) s++, n--;
    while (n > 0 && (s[n - 1] == ' ' || (s[n - 1] >= '\t' && s[n - 1] <= '\r'))) n--;
    return strndup(s, n);
}

/* HOST's address in SHOAL_MPI_AGENTS (`host=ip:port,...`; the last entry wins), malloc'ed, or NULL. */
static char *agent_address(const char *agents, const char *host) {
    char *found = NULL;
    const char *item = agents;
    while (item != NULL) {
        const char *end = strchr(item, ',');
        size_t n = end ? (size_t)(end - item) : strlen(item);
        const char *eq = memchr(item, '=', n);
        if (eq != NULL) {
            char *name = strip_dup(item, (size_t)(eq - item));
            if (name != NULL && strcmp(name, host) == 0) {
                free(found);
                found = strip_dup(eq + 1, n - (size_t)(eq + 1 - item));
            }
            free(name);
        }
        item = end ? end + 1 : NULL;
    }
    return found;
}

static const char *env_or(const char *name, const char *fallback) {
    const char *v = getenv(name);
    return v ? v : fallback;
}

/* The hello frame's payload: a JSON object, keys as the Python shim sends them. */
static int hello_json(Buf *b, int nwords, char **words) {
    const char *attempt = env_or("SHOAL_TASK_ATTEMPT", "0");
    char *end;
    long n = strtol(attempt, &end, 10);
    char num[32];
    Buf cmd = {0};
    int rc = -1;
    if (*attempt == '\0') n = 0;
    else if (*end != '\0') { say("SHOAL_TASK_ATTEMPT is not a number: %s", attempt); return -1; }
    for (int i = 0; i < nwords; i++)
        if ((i && buf_str(&cmd, " ")) || buf_str(&cmd, words[i])) goto out;
    if (buf_put(&cmd, "", 1)) goto out;
    snprintf(num, sizeof num, "%ld", n);
    if (buf_str(b, "{\"job_id\": ") || json_string(b, env_or("SHOAL_JOB_ID", "")) ||
        buf_str(b, ", \"task_id\": ") || json_string(b, env_or("SHOAL_TASK_ID", "")) ||
        buf_str(b, ", \"attempt\": ") || buf_str(b, num) ||
        buf_str(b, ", \"argv\": [\"/bin/sh\", \"-c\", ") || json_string(b, cmd.data) ||
        buf_str(b, "], \"secret\": ") || json_string(b, env_or("SHOAL_EXEC_SECRET", "")) || buf_str(b, "}"))
        goto out;
    rc = 0;
out:
    if (rc) say("the command is too long (more than %u bytes)", MAX_FRAME);
    free(cmd.data);
    return rc;
}

/* ---- Connecting --------------------------------------------------------------------------------- */

/* A TCP connection to `ip:port` or `[v6]:port`, or -1 (said why, after `what`). */
static int tcp_connect(const char *address, const char *what) {
    const char *colon = strrchr(address, ':'), *start = address;
    struct addrinfo hints = {0}, *res, *ai;
    struct timeval tv = {CONNECT_TIMEOUT_S, 0};
    char host[256];
    int fd = -1, err, one = 1;
    size_t n;
    if (colon == NULL || colon[1] == '\0') { say("%s: not an address ip:port", what); return -1; }
    n = (size_t)(colon - address);
    if (n >= 2 && address[0] == '[' && address[n - 1] == ']') start++, n -= 2;
    if (n >= sizeof host) { say("%s: the address is too long", what); return -1; }
    memcpy(host, start, n);
    host[n] = '\0';
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    err = getaddrinfo(host, colon + 1, &hints, &res);
    if (err != 0) { say("%s: %s", what, gai_strerror(err)); return -1; }
    err = 0;
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) { err = errno; continue; }
        /* Linux bounds connect() by SO_SNDTIMEO; both bound the handshake and the hello. */
        if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) == 0 &&
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0 &&
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0 &&
            connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) say("%s: %s", what, strerror(err ? err : ECONNREFUSED));
    return fd;
}

/* Why the last TLS call failed, in words (the verification error when there was one). */
static void say_tls_error(const char *what, SSL *ssl) {
    unsigned long e = ERR_peek_last_error();
    long verify = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    if (verify != X509_V_OK)
        say("%s: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: %s", what,
            X509_verify_cert_error_string(verify));
    else if (e != 0)
        say("%s: %s", what, ERR_reason_error_string(e) ? ERR_reason_error_string(e) : "TLS error");
    else
        say("%s: %s", what, errno ? strerror(errno) : "the connection was closed");
    ERR_clear_error();
}

/* A TLS session over fd trusting only ca_file and wanting the name shoal-node, or NULL (said why). */
static SSL *tls_connect(int fd, const char *ca_file, const char *what) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = NULL;
    if (ctx == NULL || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)) goto fail;
    /* The CA file alone: no default paths. */
    if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) goto fail;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    /* Partial writes, and a buffer that moves between retries: `relay` keeps appending to it. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
    /* The agent may close without close_notify: that is the end of the stream (framing tells the rest). */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
    ssl = SSL_new(ctx);
    if (ssl == NULL || !SSL_set_fd(ssl, fd) || !SSL_set_tlsext_host_name(ssl, NODE_TLS_NAME) ||
        !SSL_set1_host(ssl, NODE_TLS_NAME))
        goto fail;
    SSL_CTX_free(ctx); /* the session holds a reference */
    errno = 0;
    if (SSL_connect(ssl) == 1) return ssl;
    say_tls_error(what, ssl);
    SSL_free(ssl);
    return NULL;
fail:
    say_tls_error(what, NULL);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    return NULL;
}

/* Send all of data on the (still blocking) session; 0 or -1. Partial writes are on: loop. */
static int ssl_write_all(SSL *ssl, const void *data, size_t n) {
    while (n > 0) {
        int w = SSL_write(ssl, data, (int)n);
        if (w <= 0) return -1;
        data = (const char *)data + w;
        n -= (size_t)w;
    }
    return 0;
}

/* ---- Relaying ----------------------------------------------------------------------------------- */

static void put_header(unsigned char *h, char kind, uint32_t len) {
    h[0] = (unsigned char)kind;
    h[1] = (unsigned char)(len >> 24), h[2] = (unsigned char)(len >> 16);
    h[3] = (unsigned char)(len >> 8), h[4] = (unsigned char)len;
}

/* Write all of data to fd (waiting where fd is non-blocking); 0, or -1 with errno. */
static int write_all(int fd, const unsigned char *data, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, data, n);
        if (w < 0) {
            struct pollfd p = {fd, POLLOUT, 0};
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
            if (poll(&p, 1, -1) < 0 && errno != EINTR) return -1;
            continue;
        }
        data += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The string value of `key` in a flat JSON object of strings (the REFUSED frame), malloc'ed, or NULL.
 * Enough JSON for what the agent sends (json.dumps of str values, so ASCII with escapes). */
static char *json_field(const char *json, size_t n, const char *key) {
    size_t klen = strlen(key);
    for (size_t i = 0; i + klen + 2 < n; i++) {
        if (json[i] != '"' || memcmp(json + i + 1, key, klen) != 0 || json[i + klen + 1] != '"') continue;
        size_t j = i + klen + 2;
        while (j < n && (json[j] == ' ' || json[j] == ':')) j++;
        if (j >= n || json[j] != '"') return NULL;
        char *out = malloc(n), *o = out;
        if (out == NULL) return NULL;
        for (j++; j < n && json[j] != '"'; j++) {
            if (json[j] != '\\' || j + 1 >= n) { *o++ = json[j]; continue; }
            char c = json[++j];
            if (c == 'n') *o++ = '\n';
            else if (c == 't') *o++ = '\t';
            else if (c == 'r') *o++ = '\r';
            else if (c == '"' || c == '\\' || c == '/') *o++ = c;
            else *o++ = '?'; /* non-ASCII and control characters: not echoed to a terminal */
            if (c == 'u') j += j + 4 < n ? 4 : n - 1 - j;
        }
        *o = '\0';
        return out;
    }
    return NULL;
}

static void say_refused(const unsigned char *payload, uint32_t len) {
    char *code = json_field((const char *)payload, len, "code");
    char *reason = json_field((const char *)payload, len, "reason");
    char *message = json_field((const char *)payload, len, "message");
    say("%s (%s): %s", code ? code : "None", reason ? reason : "None", message ? message : "None");
    free(code), free(reason), free(message);
}

/* The command's status from an EXIT frame's ASCII digits, or -1. */
static int exit_status(const unsigned char *payload, uint32_t len) {
    char digits[16], *end;
    long v;
    if (len == 0 || len >= sizeof digits) return -1;
    memcpy(digits, payload, len);
    digits[len] = '\0';
    v = strtol(digits, &end, 10);
    if (*end != '\0') return -1;
    return (int)(v & 0xFF); /* as exit() and Python's sys.exit() keep it */
}

/* Relay stdin (fd 0, if stdin_open) to the command and its output to fds 1 and 2 until it exits; its
 * status, or 255 when refused or cut off. One thread, poll(): a TLS session is not to be used from two. */
static int relay(SSL *ssl, int sock, const char *host, int stdin_open) {
    /* Frames to send: stdin is read only while fewer than MAX_FRAME bytes wait, so this is enough. */
    static unsigned char out[MAX_FRAME + READ_SIZE + 2 * HEADER];
    static unsigned char in[HEADER + MAX_FRAME]; /* one frame at most, as it arrives */
    size_t out_len = 0, in_len = 0;
    if (fcntl(sock, F_SETFL, fcntl(sock, F_GETFL) | O_NONBLOCK) < 0) { say("%s: %s", host, strerror(errno)); return FAIL; }
    for (;;) {
        struct pollfd p[2] = {{sock, POLLIN | (out_len ? POLLOUT : 0), 0}, {0, POLLIN, 0}};
        /* The agent is slow to take stdin: stop reading it until it has. */
        nfds_t n = stdin_open && out_len < MAX_FRAME ? 2 : 1;
        if (poll(p, n, -1) < 0) {
            if (errno == EINTR) continue;
            say("%s: poll: %s", host, strerror(errno));
            return FAIL;
        }
        if (n == 2 && p[1].revents) {
            ssize_t r = read(0, out + out_len + HEADER, READ_SIZE);
            if (r < 0 && errno == EINTR) continue;
            if (r < 0 && errno == EAGAIN) r = 0; /* a non-blocking stdin with nothing: not the end */
            else if (r <= 0) stdin_open = 0;     /* end of stdin, or an error: the command's stdin ends */
            if (r > 0 || !stdin_open) {
                put_header(out + out_len, r > 0 ? STDIN_DATA : STDIN_EOF, (uint32_t)(r > 0 ? r : 0));
                out_len += HEADER + (size_t)(r > 0 ? r : 0);
            }
        }
        if (out_len && (p[0].revents & (POLLOUT | POLLERR | POLLHUP))) {
            int w = SSL_write(ssl, out, (int)out_len);
            if (w > 0) {
                memmove(out, out + w, out_len - (size_t)w);
                out_len -= (size_t)w;
            } else {
                int e = SSL_get_error(ssl, w);
                if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ) {
                    /* The agent stopped reading (it is done, or gone): stop sending, and let the read
                     * below find its EXIT frame or the end of the connection. */
                    ERR_clear_error();
                    out_len = 0;
                    stdin_open = 0;
                }
            }
        }
        if (!(p[0].revents & (POLLIN | POLLERR | POLLHUP))) continue;
        /* Read until the session has nothing more decrypted: poll() does not see what OpenSSL holds. */
        for (;;) {
            size_t want = in_len < HEADER ? HEADER - in_len : 0;
            if (want == 0) {
                uint32_t len = (uint32_t)in[1] << 24 | (uint32_t)in[2] << 16 | (uint32_t)in[3] << 8 | in[4];
                if (len > MAX_FRAME) { say("%s: a frame of %u bytes", host, len); return FAIL; }
                want = HEADER + len - in_len;
                if (want == 0) { /* a whole frame */
                    if (in[0] == STDOUT_DATA || in[0] == STDERR_DATA) {
                        if (write_all(in[0] == STDOUT_DATA ? 1 : 2, in + HEADER, len) < 0) {
                            say("%s: %s", host, strerror(errno));
                            return FAIL;
                        }
                    } else if (in[0] == EXIT_FRAME) {
                        int status = exit_status(in + HEADER, len);
                        if (status < 0) say("%s: an exit frame without a status", host);
                        return status < 0 ? FAIL : status;
                    } else if (in[0] == REFUSED) {
                        say_refused(in + HEADER, len);
                        return FAIL;
                    }
                    in_len = 0; /* other kinds: ignored, as the Python shim does */
                    continue;
                }
            }
            if (want > READ_SIZE) want = READ_SIZE;
            int r = SSL_read(ssl, in + in_len, (int)want);
            if (r > 0) { in_len += (size_t)r; continue; }
            int e = SSL_get_error(ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;
            if (e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SYSCALL) {
                say("the agent closed the connection");
                return FAIL;
            }
            say_tls_error(host, NULL);
            return FAIL;
        }
    }
}

int main(int argc, char **argv) {
    int h = host_index(argc, argv), sock, status;
    const char *host, *ca_file = env_or("SHOAL_AGENT_CA_FILE", ""), *at;
    char *address, what[512];
    Buf hello = {0};
    unsigned char header[HEADER];
    SSL *ssl;
    /* Started without stdin (fd 0 closed), the command gets none, not even its end (as the Python shim).
     * Then /dev/null on any closed one of fds 0-2, so that the socket cannot become "stdin" or "stdout". */
    int stdin_open = fcntl(0, F_GETFD) >= 0;
    for (int fd = 0; fd <= 2; fd++)
        if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) != fd) return FAIL;
    /* Like Python: a closed pipe is an error to report (EPIPE), not a silent death. */
    signal(SIGPIPE, SIG_IGN);
    if (h < 0) { say("no host given"); return 1; }
    host = argv[h];
    if ((at = strchr(host, '@')) != NULL) host = at + 1;
    address = agent_address(env_or("SHOAL_MPI_AGENTS", ""), host);
    if (address == NULL) {
        say("%s is not a node of this task (SHOAL_MPI_AGENTS=%s)", host, env_or("SHOAL_MPI_AGENTS", ""));
        return FAIL;
    }
    if (*ca_file == '\0') { say("SHOAL_AGENT_CA_FILE is not set: run inside a Shoal task"); return FAIL; }
    if (hello_json(&hello, argc - h - 1, argv + h + 1) < 0) return FAIL;
    snprintf(what, sizeof what, "cannot reach the agent of %s at %s", host, address);
    if ((sock = tcp_connect(address, what)) < 0) return FAIL;
    if ((ssl = tls_connect(sock, ca_file, what)) == NULL) return FAIL;
    put_header(header, HELLO, (uint32_t)hello.len);
    if (ssl_write_all(ssl, header, HEADER) < 0 || ssl_write_all(ssl, hello.data, hello.len) < 0) {
        say_tls_error(host, NULL);
        return FAIL;
    }
    free(hello.data);
    status = relay(ssl, sock, host, stdin_open);
    /* No close_notify: the agent reads the end of the connection as the caller gone, as it should. */
    return status;
}
