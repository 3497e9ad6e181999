// Starting a command with a clean signal state, shared by the recorder's `-- COMMAND` and the
// exec: transport: whatever mask or ignored signals migpilot runs with, the command gets the
// defaults, so that SIGTERM ends it.
#define _GNU_SOURCE
#include <signal.h>
#include <spawn.h>
#include <unistd.h>
#include "CUring.h"

extern char **environ;

int mp_spawn(char *const argv[], int search_path, int stdin_fd, int stdout_fd, int *pid) {
    posix_spawnattr_t attributes;
    posix_spawn_file_actions_t actions;
    sigset_t none, all;
    posix_spawnattr_init(&attributes);
    posix_spawn_file_actions_init(&actions);
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attributes, &none);
    posix_spawnattr_setsigdefault(&attributes, &all);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    if (stdin_fd >= 0) posix_spawn_file_actions_adddup2(&actions, stdin_fd, 0);
    if (stdout_fd >= 0) posix_spawn_file_actions_adddup2(&actions, stdout_fd, 1);
    pid_t child = 0;
    int rc = search_path ? posix_spawnp(&child, argv[0], &actions, &attributes, argv, environ)
                         : posix_spawn(&child, argv[0], &actions, &attributes, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
    if (rc == 0) *pid = child;
    return rc;
}
