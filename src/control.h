/* The control thread: loads and validates config, binds listeners, publishes snapshots,
 * handles signals (HUP reload, TERM/INT drain), serves the admin endpoint and talks to
 * systemd.  It never touches client bytes. */
#ifndef MG_CONTROL_H
#define MG_CONTROL_H

/* `meshgate -t`: load, validate, print every diagnostic; 0 when valid, 1 when not. */
int control_check(const char *main_path);
/* Run until SIGTERM/SIGINT; returns the process exit code. */
int control_run(const char *main_path);

#endif
