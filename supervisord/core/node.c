/*
 * node.c: building, searching and freeing the supervision tree, and the
 * names of the core's enums (used by logs, --check and tests).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

struct node *node_new(const char *name, enum node_kind kind, const struct node_config *config)
{
    /* The name lives right after the node: one allocation, not two. */
    size_t name_size = strlen(name) + 1;
    struct node *node = calloc(1, sizeof(*node) + name_size);
    if (!node)
        return NULL;
    node->name = memcpy(node + 1, name, name_size);
    node->kind = kind;
    if (kind == NODE_SUPERVISOR && !(node->supervision = calloc(1, sizeof(*node->supervision)))) {
        free(node);
        return NULL;
    }
    node->config = config;
    node->state = NODE_STOPPED;
    return node;
}

int node_add_child(struct node *supervisor, struct node *child)
{
    struct node **grown =
        realloc(supervisor->children, (supervisor->n_children + 1) * sizeof(*grown));
    if (!grown)
        return -ENOMEM;
    supervisor->children = grown;
    child->parent = supervisor;
    child->position = supervisor->n_children;
    supervisor->children[supervisor->n_children++] = child;
    return 0;
}

void node_free(struct node *node)
{
    if (!node)
        return;
    free(node->children);
    if (node->supervision)
        free(node->supervision->window);
    free(node->supervision);
    free(node);
}

void node_free_tree(struct node *node)
{
    if (!node)
        return;
    for (size_t i = 0; i < node->n_children; i++)
        node_free_tree(node->children[i]);
    node_free(node);
}

struct node *node_find(struct node *root, const char *name)
{
    if (!root)
        return NULL;
    if (strcmp(root->name, name) == 0)
        return root;
    for (size_t i = 0; i < root->n_children; i++) {
        struct node *found = node_find(root->children[i], name);
        if (found)
            return found;
    }
    return NULL;
}

const char *node_state_name(enum node_state state)
{
    static const char *const names[NODE_STATE_MAX] = {
        [NODE_STOPPED] = "stopped",   [NODE_STARTING] = "starting", [NODE_RUNNING] = "running",
        [NODE_STOPPING] = "stopping", [NODE_DONE] = "exited",       [NODE_FAILED] = "failed",
    };
    return state < NODE_STATE_MAX ? names[state] : "?";
}

const char *node_kind_name(enum node_kind kind)
{
    return kind == NODE_SERVICE ? "service" : "supervisor";
}

const char *strategy_name(enum strategy strategy)
{
    static const char *const names[STRATEGY_MAX] = {
        [STRATEGY_ONE_FOR_ONE] = "one-for-one",
        [STRATEGY_ONE_FOR_ALL] = "one-for-all",
        [STRATEGY_REST_FOR_ONE] = "rest-for-one",
    };
    return strategy < STRATEGY_MAX ? names[strategy] : "?";
}

const char *restart_type_name(enum restart_type restart)
{
    static const char *const names[RESTART_MAX] = {
        [RESTART_PERMANENT] = "permanent",
        [RESTART_TRANSIENT] = "transient",
        [RESTART_TEMPORARY] = "temporary",
    };
    return restart < RESTART_MAX ? names[restart] : "?";
}

const char *auto_shutdown_name(enum auto_shutdown value)
{
    static const char *const names[AUTO_SHUTDOWN_MAX] = {
        [AUTO_SHUTDOWN_NEVER] = "never",
        [AUTO_SHUTDOWN_ANY_SIGNIFICANT] = "any-significant",
        [AUTO_SHUTDOWN_ALL_SIGNIFICANT] = "all-significant",
    };
    return value < AUTO_SHUTDOWN_MAX ? names[value] : "?";
}

const char *service_type_name(enum service_type type)
{
    static const char *const names[SERVICE_TYPE_MAX] = {
        [SERVICE_SIMPLE] = "simple",
        [SERVICE_EXEC] = "exec",
        [SERVICE_NOTIFY] = "notify",
        [SERVICE_ONESHOT] = "oneshot",
    };
    return type < SERVICE_TYPE_MAX ? names[type] : "?";
}
