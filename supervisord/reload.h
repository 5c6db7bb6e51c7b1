/*
 * reload.h: re-reading the unit directory and applying only the
 * difference (SIGHUP, `arborctl reload`).
 *
 * A reload runs in three steps, never inside the core's own step:
 *  1. Parse and validate the whole directory; any error, and nothing
 *     changes. Otherwise stop what must stop: removed units, and services
 *     whose unit file changed (a unit moving out of a removed supervisor
 *     counts as changed).
 *  2. Once those have stopped, restructure: the tree is rebuilt from the
 *     new files, reusing every surviving node as it is (same pid, same
 *     state); supervisors take their new settings and Children=; removed
 *     nodes are freed; new services get their sockets.
 *  3. Start the new units and the changed services (unless the operator
 *     had stopped them) in their place in the tree.
 */
#ifndef ARBOR_RELOAD_H
#define ARBOR_RELOAD_H

#include <stdbool.h>

#include "unit/unit.h"

struct daemon;
struct node;

/* Begin a reload. Returns 0 (under way, maybe already done), -EINVAL with
 * the problems in `diag` (nothing changed), -EBUSY or -ESHUTDOWN. */
int reload_request(struct daemon *d, struct diagnostics *diag);
bool reload_in_progress(const struct daemon *d);
/* What the last reload did, for the operator. */
const char *reload_summary(const struct daemon *d);
/* After each core step: go on with a reload whose stops are complete. */
void reload_continue(struct daemon *d);

#endif
