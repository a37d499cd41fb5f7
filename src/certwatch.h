/* Certificate file watching: the files a configuration read for TLS (certificates, keys,
 * CAs, CRLs, session ticket keys) are watched with inotify on the control thread, and a
 * change to any of them reloads the configuration exactly as SIGHUP does (control.c), so
 * a rotated certificate is served to new connections while open ones keep theirs.
 *
 * What is watched is the directory of each file, and the directory of the file its
 * symbolic links lead to, never the file itself: atomic replacement by rename(2) (what
 * certbot and most deploy tools do) and Kubernetes' secret volumes (the "..data" symlink
 * swapped to a new timestamped directory) replace the inode a file watch would be on.
 * Events only arm a timer; when it fires, each file is stat(2)ed and compared with the
 * identity (device, inode, size, modification time) it had when the configuration read
 * it, so unrelated activity in a watched directory costs a few stats and no reload.  The
 * timer waits for CERTWATCH_QUIET_MS without events (a certificate and its key written
 * one after the other become one reload), but no longer than CERTWATCH_MAX_MS after the
 * first event.
 *
 * Collection: the TLS loaders call certwatch_note() for every file they open while a load
 * is in progress (certwatch_begin() .. certwatch_end()); outside such a window (meshgate -t,
 * unit tests) notes are ignored.  Control thread only. */
#ifndef MG_CERTWATCH_H
#define MG_CERTWATCH_H

#include <stdbool.h>

struct event_base;

#define CERTWATCH_QUIET_MS 300
#define CERTWATCH_MAX_MS 2000

/* Start watching (after the first load); changed(path) is called from the event loop
 * with the first file found changed, and is expected to reload (which calls
 * certwatch_begin/end and so renews the watches).  -1 when inotify is unavailable (logged;
 * SIGHUP still reloads). */
int certwatch_start(struct event_base *base, void (*changed)(const char *path));
void certwatch_stop(void);

/* A configuration load begins: notes are collected from now on. */
void certwatch_begin(void);
/* The file at path was opened as fd for this load (fd < 0: it could not be opened, so its
 * appearance is a change worth a reload). */
void certwatch_note(const char *path, int fd);
/* The load ends.  applied: its files become the watched set.  Otherwise (the load was
 * refused) its files are added to the watched set with the identities this attempt saw,
 * so a broken file is retried when it changes again, not on every event. */
void certwatch_end(bool applied);

/* The first watched file whose identity differs from what the configuration read, or
 * NULL.  The timer calls it; exposed for tests. */
const char *certwatch_changed(void);
/* Number of files watched (for tests and the log). */
unsigned certwatch_count(void);
/* Whether events since the last check have armed the timer (for tests). */
bool certwatch_check_due(void);

#endif
