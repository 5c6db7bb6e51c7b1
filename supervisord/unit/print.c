/*
 * print.c: the tree as text, for arbord --check.
 *
 * One line per node, drawn like tree(1):
 *
 *   root  supervisor one-for-one intensity 5/10s
 *   ├── db  service notify permanent
 *   └── web  supervisor rest-for-one intensity 3/5s transient
 *       └── app  service exec transient significant
 *
 * The name comes first so the eye can follow the tree; the settings that
 * decide supervision follow it. This is the only code of the unit module
 * that writes anything.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit/unit.h"

/* A duration in the largest unit that divides it: 10s, 500ms, 2min, 1h. */
static void print_duration(char *buf, size_t size, msec_t ms)
{
    if (ms == DURATION_INFINITY)
        snprintf(buf, size, "infinity");
    else if (ms > 0 && ms % 3600000 == 0)
        snprintf(buf, size, "%lldh", (long long)(ms / 3600000));
    else if (ms > 0 && ms % 60000 == 0)
        snprintf(buf, size, "%lldmin", (long long)(ms / 60000));
    else if (ms % 1000 == 0)
        snprintf(buf, size, "%llds", (long long)(ms / 1000));
    else
        snprintf(buf, size, "%lldms", (long long)ms);
}

static void print_node(FILE *out, const struct node *node, const struct unit_set *set)
{
    const struct node_config *c = node->config;
    const struct unit *unit = set ? unit_set_find(set, node->name) : NULL;
    bool implicit_root = !node->parent && set && !set->explicit_root;
    char period[32];

    fprintf(out, "%s  %s", node->name, node_kind_name(node->kind));
    if (node->kind == NODE_SUPERVISOR) {
        print_duration(period, sizeof(period), c->period);
        fprintf(out, " %s intensity %d/%s", strategy_name(c->strategy), c->intensity, period);
        if (node->parent) /* the root has nobody to restart it */
            fprintf(out, " %s", restart_type_name(c->restart));
        if (c->auto_shutdown != AUTO_SHUTDOWN_NEVER)
            fprintf(out, " auto-shutdown %s", auto_shutdown_name(c->auto_shutdown));
    } else {
        fprintf(out, " %s %s", service_type_name(c->type), restart_type_name(c->restart));
    }
    if (c->significant)
        fputs(" significant", out);
    if (node->kind == NODE_SERVICE && unit && unit->mailbox)
        fputs(" mailbox", out);
    if (implicit_root)
        fputs(" (implicit)", out);
    fputc('\n', out);
}

struct print_prefix {
    char *text;
    size_t len, capacity;
};

static int print_prefix_push(struct print_prefix *prefix, const char *more)
{
    size_t n = strlen(more);
    if (prefix->len + n + 1 > prefix->capacity) {
        size_t capacity = (prefix->len + n + 1) * 2;
        char *grown = realloc(prefix->text, capacity);
        if (!grown)
            return -1;
        prefix->text = grown;
        prefix->capacity = capacity;
    }
    memcpy(prefix->text + prefix->len, more, n + 1);
    prefix->len += n;
    return 0;
}

/* Print the children of `node`; `prefix` holds the rails of its ancestors. */
static void print_children(FILE *out, const struct node *node, const struct unit_set *set,
                           struct print_prefix *prefix)
{
    for (size_t i = 0; i < node->n_children; i++) {
        bool last = i + 1 == node->n_children;
        size_t len = prefix->len;

        fprintf(out, "%s%s", prefix->text, last ? "└── " : "├── ");
        print_node(out, node->children[i], set);
        if (print_prefix_push(prefix, last ? "    " : "│   ") < 0) {
            fputs("(out of memory)\n", out);
            return;
        }
        print_children(out, node->children[i], set, prefix);
        prefix->len = len;
        prefix->text[len] = '\0';
    }
}

void unit_print_tree(FILE *out, const struct node *root, const struct unit_set *set)
{
    struct print_prefix prefix = {0};

    if (!root)
        return;
    print_node(out, root, set);
    if (print_prefix_push(&prefix, "") == 0)
        print_children(out, root, set, &prefix);
    free(prefix.text);
}
