/*
 * keeper: the demo's fd-store service (units/demo/keeper.service, and the
 * worked example of arbor-upgrade(7)). Its count lives in a memfd that
 * arbord keeps for it (FDSTORE=1), so the count goes on across kill -9,
 * restarts and `arborctl upgrade keeper`; the version label it prints is
 * its first argument, so an upgrade shows.
 */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

int main(int argc, char **argv)
{
    const char *version = argc > 1 ? argv[1] : "v1";
    char **names = NULL;
    int fd = -1;
    int n = sd_listen_fds_with_names(0, &names);
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], "state") == 0)
            fd = SD_LISTEN_FDS_START + i;
    if (fd < 0) { /* the first instance: make the state and store it */
        fd = memfd_create("state", MFD_CLOEXEC);
        if (fd < 0 || ftruncate(fd, sizeof(long)) < 0) {
            perror("keeper: memfd");
            return 1;
        }
        if (sd_pid_notify_with_fds(0, 0, "FDSTORE=1\nFDNAME=state", &fd, 1) <= 0)
            fprintf(stderr, "keeper: cannot store the state (no FileDescriptorStoreMax=?)\n");
    }
    long *count = mmap(NULL, sizeof(long), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (count == MAP_FAILED) {
        perror("keeper: mmap");
        return 1;
    }
    sd_notify(0, "READY=1");
    for (;;) {
        printf("%s: count %ld (pid %d)\n", version, ++*count, (int)getpid());
        fflush(stdout);
        sleep(2);
    }
}
