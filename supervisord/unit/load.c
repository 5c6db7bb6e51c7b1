/*
 * load.c: a unit directory into a validated unit set, and the set into the
 * core's tree.
 *
 * Loading is: scan the directory for NAME.service and NAME.supervisor,
 * parse every file (parse.c), then validate the set as a whole. Validation
 * works on parent links: each Children= entry links a child to the
 * supervisor listing it, and the first link wins, so every later listing
 * is reported against the earlier one. With at most one parent per unit,
 * the links form trees plus, in a broken set, cycles; both are found by
 * walking up the links. Nothing stops at the first problem.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "unit/unit.h"

#define LOAD_NO_PARENT SIZE_MAX
/* Longest cycle spelt out in a message; longer ones end in "...". */
#define LOAD_CYCLE_TEXT_MAX 256

/* ---- the set ------------------------------------------------------------ */

static int load_name_cmp(const void *key, const void *elem)
{
    const struct unit *const *u = elem;
    return strcmp(key, (*u)->name);
}

/* Index of `name` in the set, or LOAD_NO_PARENT. */
static size_t load_index(const struct unit_set *set, const char *name)
{
    struct unit **found = NULL;
    if (set->count)
        found = bsearch(name, set->units, set->count, sizeof(*set->units), load_name_cmp);
    return found ? (size_t)(found - set->units) : LOAD_NO_PARENT;
}

struct unit *unit_set_find(const struct unit_set *set, const char *name)
{
    size_t i = load_index(set, name);
    return i == LOAD_NO_PARENT ? NULL : set->units[i];
}

void unit_set_free(struct unit_set *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->count; i++)
        unit_free(set->units[i]);
    free(set->units);
    set->units = NULL;
    set->count = 0;
    set->explicit_root = false;
}

/* ---- scanning the directory --------------------------------------------- */

struct load_entry {
    char *name, *path;
    enum node_kind kind;
};

static int load_entry_cmp(const void *a, const void *b)
{
    const struct load_entry *ea = a, *eb = b;
    int r = strcmp(ea->name, eb->name);
    return r ? r : (int)ea->kind - (int)eb->kind;
}

/* The kind a file name's suffix gives, and the length of the name before
 * it; -1 for a file that is not a unit. */
static int load_suffix(const char *file, enum node_kind *ret_kind, size_t *ret_len)
{
    static const struct {
        const char *suffix;
        enum node_kind kind;
    } suffixes[] = {{".service", NODE_SERVICE}, {".supervisor", NODE_SUPERVISOR}};
    size_t len = strlen(file);

    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        size_t slen = strlen(suffixes[i].suffix);
        if (len > slen && strcmp(file + len - slen, suffixes[i].suffix) == 0) {
            *ret_kind = suffixes[i].kind;
            *ret_len = len - slen;
            return 0;
        }
    }
    return -1;
}

/* Run as root, arbord runs whatever its unit files say as anyone: a file
 * (or the directory holding them) that another user owns or may write is
 * a way to root, and is refused. As anyone else, arbord can only do what
 * its own user can, and does not check. */
static bool load_trusted(const char *path, const struct stat *st, const char *what,
                         struct diagnostics *diag)
{
    if (geteuid() != 0)
        return true;
    if (st->st_uid != 0) {
        diag_add(diag, path, 0,
                 "%s owned by uid %d, not root: arbord runs as root and would run what "
                 "that user writes (chown root)",
                 what, (int)st->st_uid);
        return false;
    }
    bool sticky_dir = S_ISDIR(st->st_mode) && (st->st_mode & S_ISVTX);
    if (((st->st_mode & S_IWOTH) || ((st->st_mode & S_IWGRP) && st->st_gid != 0)) && !sticky_dir) {
        diag_add(diag, path, 0,
                 "%s writable by other users (mode %04o): arbord runs as root and would run "
                 "what they write (chmod go-w)",
                 what, (unsigned)(st->st_mode & 07777));
        return false;
    }
    return true;
}

int unit_file_trusted(const char *path, struct diagnostics *diag)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        diag_add(diag, path, 0, "cannot read: %s", strerror(errno));
        return -1;
    }
    return load_trusted(path, &st, "unit file", diag) ? 0 : -1;
}

/* Add dir/file to the entries if it is a unit file; report it if it is a
 * broken one. Returns -1 only on ENOMEM. */
static int load_consider(const char *dir, const char *file, struct load_entry **entries, size_t *n,
                         struct diagnostics *diag)
{
    enum node_kind kind;
    size_t name_len;
    struct stat st;
    char *path = NULL, *name = NULL;

    /* Dotfiles are editor backups and the like, never units. */
    if (file[0] == '.' || load_suffix(file, &kind, &name_len) < 0)
        return 0;
    size_t dir_len = strlen(dir);
    bool slash = dir_len > 0 && dir[dir_len - 1] == '/';
    if (asprintf(&path, "%s%s%s", dir, slash ? "" : "/", file) < 0)
        return -1;
    if (stat(path, &st) < 0) {
        diag_add(diag, path, 0, "cannot read: %s", strerror(errno));
        goto skip;
    }
    if (S_ISDIR(st.st_mode)) /* like systemd's NAME.service.d: not a unit */
        goto skip;
    if (!load_trusted(path, &st, "unit file", diag))
        goto skip;
    name = strndup(file, name_len);
    if (!name)
        goto oom;
    if (!unit_name_valid(name)) {
        diag_add(diag, path, 0,
                 "bad unit name '%s': names match [A-Za-z0-9][A-Za-z0-9_.-]*, at most %d bytes",
                 name, UNIT_NAME_MAX);
        goto skip;
    }
    struct load_entry *grown = realloc(*entries, (*n + 1) * sizeof(*grown));
    if (!grown)
        goto oom;
    *entries = grown;
    grown[(*n)++] = (struct load_entry){.name = name, .path = path, .kind = kind};
    return 0;

skip:
    free(name);
    free(path);
    return 0;
oom:
    free(name);
    free(path);
    return -1;
}

static int load_dirent_cmp(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name); /* bytes, not the locale's order */
}

/* Read the names of the unit files in `dir`, sorted by name then kind.
 * The directory is read whole and sorted first, so that problems with
 * file names are reported in a stable order, not in readdir()'s. */
static int load_scan(const char *dir, struct load_entry **ret, size_t *ret_n,
                     struct diagnostics *diag)
{
    struct dirent **names;
    int n = scandir(dir, &names, NULL, load_dirent_cmp);
    int r = 0;

    if (n < 0) {
        diag_add(diag, dir, 0, "cannot read unit directory: %s", strerror(errno));
        return -1;
    }
    struct stat st;
    if (stat(dir, &st) == 0 && !load_trusted(dir, &st, "unit directory", diag)) {
        for (int i = 0; i < n; i++)
            free(names[i]);
        free(names);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (r == 0 && load_consider(dir, names[i]->d_name, ret, ret_n, diag) < 0) {
            diag_add(diag, dir, 0, "out of memory");
            r = -1;
        }
        free(names[i]);
    }
    free(names);
    if (*ret_n)
        qsort(*ret, *ret_n, sizeof(**ret), load_entry_cmp);
    return r;
}

/* Parse every entry into the set. Entries are sorted, so a name used by
 * both a .service and a .supervisor comes as two neighbours. */
static void load_parse_all(struct load_entry *entries, size_t n, struct unit_set *set,
                           struct diagnostics *diag)
{
    set->units = calloc(n ? n : 1, sizeof(*set->units));
    if (!set->units) {
        diag_add(diag, NULL, 0, "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && strcmp(entries[i].name, entries[i - 1].name) == 0) {
            diag_add(diag, entries[i].path, 0,
                     "the name %s is also used by %s: a name is one unit, a service or a "
                     "supervisor",
                     entries[i].name, entries[i - 1].path);
            continue;
        }
        struct unit *u = unit_parse_file(entries[i].path, entries[i].name, entries[i].kind, diag);
        if (u)
            set->units[set->count++] = u;
    }
}

/* ---- validation --------------------------------------------------------- */

struct load_graph {
    const struct unit_set *set;
    struct diagnostics *diag;
    size_t root;    /* index of root.supervisor, or LOAD_NO_PARENT */
    size_t *parent; /* index of the supervisor listing each unit */
    int *parent_line;
    bool *in_cycle;  /* part of a reported cycle */
    size_t *seen_by; /* the last supervisor that listed each unit, linked or not */
    int *seen_line;
    size_t *walk; /* scratch for cycle detection: walk number + 1 */
};

static void load_link_child(struct load_graph *g, size_t sup, size_t i)
{
    const struct unit *s = g->set->units[sup];
    const char *name = s->extra->children[i];
    int line = s->extra->children_lines[i];
    size_t child = load_index(g->set, name);

    if (child != LOAD_NO_PARENT && g->seen_by[child] == sup) {
        diag_add(g->diag, s->path, line, "Children=: %s is listed twice (first at line %d)", name,
                 g->seen_line[child]);
        return;
    }
    if (child != LOAD_NO_PARENT) {
        g->seen_by[child] = sup;
        g->seen_line[child] = line;
    }
    if (child == LOAD_NO_PARENT) {
        diag_add(g->diag, s->path, line,
                 "Children=: no unit named %s (no %s.service or %s.supervisor here)", name, name,
                 name);
    } else if (child == g->root) {
        diag_add(g->diag, s->path, line,
                 "Children=: root cannot be a child: root.supervisor is the top of the tree");
    } else if (child == sup) {
        diag_add(g->diag, s->path, line,
                 "Children=: %s lists itself: a supervisor cannot contain itself", name);
        g->in_cycle[sup] = true;
    } else if (g->parent[child] != LOAD_NO_PARENT) {
        diag_add(g->diag, s->path, line,
                 "Children=: %s is already listed by %s:%d: a unit has one supervisor", name,
                 g->set->units[g->parent[child]]->path, g->parent_line[child]);
    } else {
        g->parent[child] = sup;
        g->parent_line[child] = line;
    }
}

/* Report the cycle through `x`, blaming the Children= line that lists x
 * (in the file of x's parent p). It is spelt from p in "lists" order,
 * "p -> x -> ... -> p", which is the reverse of walking up from p. */
static void load_report_cycle(struct load_graph *g, size_t x)
{
    struct unit **units = g->set->units;
    size_t p = g->parent[x], length = 0;

    for (size_t y = p; !length || y != p; y = g->parent[y])
        length++;
    size_t *up = calloc(length, sizeof(*up)); /* up[k] is p's k-th ancestor */
    char text[LOAD_CYCLE_TEXT_MAX + 4] = "";

    if (up) {
        up[0] = p;
        for (size_t k = 1; k < length; k++)
            up[k] = g->parent[up[k - 1]];
        size_t used = (size_t)snprintf(text, sizeof(text), "%s", units[p]->name);
        for (size_t k = length; k-- > 0 && used < LOAD_CYCLE_TEXT_MAX;)
            used +=
                (size_t)snprintf(text + used, sizeof(text) - used, " -> %s", units[up[k]]->name);
        if (used >= LOAD_CYCLE_TEXT_MAX)
            strcpy(text + LOAD_CYCLE_TEXT_MAX, "...");
    }
    diag_add(g->diag, units[p]->path, g->parent_line[x],
             "Children=: listing %s makes a cycle: %s; a supervisor cannot contain itself",
             units[x]->name, up ? text : "(out of memory)");
    for (size_t y = p, k = 0; k < length; k++, y = g->parent[y])
        g->in_cycle[y] = true;
    free(up);
}

static void load_find_cycles(struct load_graph *g)
{
    for (size_t start = 0; start < g->set->count; start++) {
        size_t y = start;
        while (y != LOAD_NO_PARENT && !g->walk[y]) {
            g->walk[y] = start + 1;
            y = g->parent[y];
        }
        if (y != LOAD_NO_PARENT && g->walk[y] == start + 1 && !g->in_cycle[y])
            load_report_cycle(g, y);
    }
}

/* With root.supervisor, every unit must be in its tree. Only the top of a
 * detached branch is "not listed"; those below it are named as such, and
 * cycles were reported already. */
static void load_check_reachable(struct load_graph *g)
{
    for (size_t u = 0; u < g->set->count; u++) {
        size_t y = u, steps = 0;
        while (y != g->root && !g->in_cycle[y] && g->parent[y] != LOAD_NO_PARENT &&
               steps++ < g->set->count)
            y = g->parent[y];
        if (y == g->root || g->in_cycle[y])
            continue;
        if (y == u)
            diag_add(g->diag, g->set->units[u]->path, 0,
                     "not listed by any supervisor: with root.supervisor, every unit must be "
                     "in its tree");
        else
            diag_add(g->diag, g->set->units[u]->path, 0,
                     "not in root.supervisor's tree: its supervisor %s is not in it",
                     g->set->units[g->parent[u]]->name);
    }
}

/* OTP refuses a significant child under auto_shutdown=never. */
static void load_check_significant(struct load_graph *g)
{
    for (size_t u = 0; u < g->set->count; u++) {
        const struct unit *unit = g->set->units[u];
        size_t p = g->parent[u];
        if (!unit->config.significant)
            continue;
        if (p != LOAD_NO_PARENT && g->set->units[p]->config.auto_shutdown == AUTO_SHUTDOWN_NEVER)
            diag_add(g->diag, unit->path, unit->line_significant,
                     "Significant=yes, but its supervisor %s has AutoShutdown=never: set "
                     "AutoShutdown=any-significant or all-significant in %s",
                     g->set->units[p]->name, g->set->units[p]->path);
        else if (p == LOAD_NO_PARENT && g->root == LOAD_NO_PARENT && !g->in_cycle[u])
            diag_add(g->diag, unit->path, unit->line_significant,
                     "Significant=yes, but the implicit root supervisor has AutoShutdown=never: "
                     "list %s in a supervisor with AutoShutdown=any-significant or "
                     "all-significant, or write root.supervisor",
                     unit->name);
    }
}

static void load_validate(const struct unit_set *set, struct diagnostics *diag)
{
    size_t n = set->count;
    struct load_graph g = {
        .set = set,
        .diag = diag,
        .root = set->explicit_root ? load_index(set, "root") : LOAD_NO_PARENT,
        .parent = malloc((n ? n : 1) * sizeof(size_t)),
        .parent_line = calloc(n ? n : 1, sizeof(int)),
        .in_cycle = calloc(n ? n : 1, sizeof(bool)),
        .walk = calloc(n ? n : 1, sizeof(size_t)),
        .seen_by = malloc((n ? n : 1) * sizeof(size_t)),
        .seen_line = calloc(n ? n : 1, sizeof(int)),
    };
    if (!g.parent || !g.parent_line || !g.in_cycle || !g.walk || !g.seen_by || !g.seen_line) {
        diag_add(diag, NULL, 0, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        g.parent[i] = g.seen_by[i] = LOAD_NO_PARENT;

    size_t named_root = load_index(set, "root");
    if (!set->explicit_root && named_root != LOAD_NO_PARENT)
        diag_add(diag, set->units[named_root]->path, 0,
                 "the name root is reserved for the root supervisor: rename this unit, or "
                 "write root.supervisor");
    for (size_t s = 0; s < n; s++)
        for (size_t i = 0; i < set->units[s]->extra->n_children; i++)
            load_link_child(&g, s, i);
    load_find_cycles(&g);
    if (set->explicit_root)
        load_check_reachable(&g);
    load_check_significant(&g);
out:
    free(g.parent);
    free(g.parent_line);
    free(g.in_cycle);
    free(g.walk);
    free(g.seen_by);
    free(g.seen_line);
}

int unit_load_dir(const char *dir, struct unit_set *set, struct diagnostics *diag)
{
    size_t start = diag_problems(diag);
    struct load_entry *entries = NULL;
    size_t n = 0;

    *set = (struct unit_set){0};
    if (load_scan(dir, &entries, &n, diag) == 0) {
        load_parse_all(entries, n, set, diag);
        struct unit *root = unit_set_find(set, "root");
        set->explicit_root = root && root->kind == NODE_SUPERVISOR;
        load_validate(set, diag);
    }
    for (size_t i = 0; i < n; i++) {
        free(entries[i].name);
        free(entries[i].path);
    }
    free(entries);
    return diag_problems(diag) > start ? -1 : 0;
}

static int load_unit_cmp(const void *a, const void *b)
{
    return strcmp((*(struct unit *const *)a)->name, (*(struct unit *const *)b)->name);
}

int unit_set_validate(struct unit_set *set, struct diagnostics *diag)
{
    size_t start = diag_problems(diag);
    if (set->count > 1)
        qsort(set->units, set->count, sizeof(*set->units), load_unit_cmp);
    for (size_t i = 1; i < set->count; i++)
        if (strcmp(set->units[i]->name, set->units[i - 1]->name) == 0)
            diag_add(diag, set->units[i]->path, 0, "the name %s is used twice",
                     set->units[i]->name);
    struct unit *root = unit_set_find(set, "root");
    set->explicit_root = root && root->kind == NODE_SUPERVISOR;
    load_validate(set, diag);
    return diag_problems(diag) > start ? -1 : 0;
}

/* ---- the core tree ------------------------------------------------------ */

/* Build the node of unit `u` and, recursively, its children. `built`
 * guards against a set that was not valid: no unit is built twice. */
static struct node *load_build_node(const struct unit_set *set, size_t u, bool *built)
{
    const struct unit *unit = set->units[u];
    struct node *node = node_new(unit->name, unit->kind, &unit->config);

    built[u] = true;
    if (!node)
        return NULL;
    for (size_t i = 0; i < unit->extra->n_children; i++) {
        size_t c = load_index(set, unit->extra->children[i]);
        if (c == LOAD_NO_PARENT || built[c])
            continue;
        struct node *child = load_build_node(set, c, built);
        if (!child || node_add_child(node, child) < 0) {
            node_free_tree(child);
            node_free_tree(node);
            return NULL;
        }
    }
    return node;
}

/* The implicit root adopts, in name order, every unit no supervisor lists. */
static struct node *load_build_implicit_root(const struct unit_set *set, bool *built)
{
    /* Nodes keep a pointer to their config: the implicit root's lives here. */
    static struct node_config config;
    unit_config_defaults(NODE_SUPERVISOR, &config);
    struct node *root = node_new("root", NODE_SUPERVISOR, &config);
    bool *listed = calloc(set->count ? set->count : 1, sizeof(bool));

    if (!root || !listed)
        goto fail;
    for (size_t s = 0; s < set->count; s++) {
        for (size_t i = 0; i < set->units[s]->extra->n_children; i++) {
            size_t c = load_index(set, set->units[s]->extra->children[i]);
            if (c != LOAD_NO_PARENT)
                listed[c] = true;
        }
    }
    for (size_t u = 0; u < set->count; u++) {
        if (listed[u] || built[u])
            continue;
        struct node *child = load_build_node(set, u, built);
        if (!child || node_add_child(root, child) < 0) {
            node_free_tree(child);
            goto fail;
        }
    }
    free(listed);
    return root;
fail:
    node_free_tree(root);
    free(listed);
    return NULL;
}

struct node *unit_build_tree(const struct unit_set *set)
{
    bool *built = calloc(set->count ? set->count : 1, sizeof(bool));
    struct node *root = NULL;

    if (!built)
        return NULL;
    if (set->explicit_root)
        root = load_build_node(set, load_index(set, "root"), built);
    else
        root = load_build_implicit_root(set, built);
    free(built);
    return root;
}
