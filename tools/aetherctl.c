/*
 * aetherctl.c: the operator CLI (tools layer). Single-threaded.
 *
 *   aetherctl [--help] COMMAND [ARGS...]
 *
 * Commands are rows of one table (name, one-line summary, usage, handler), so
 * adding one (status, shards, plan, ...) is adding a row and a function;
 * `aetherctl help` and `aetherctl --help` list the table. Each handler parses
 * its own options with getopt_long over its own argv (argv[0] = the command
 * name).
 *
 * Exit status: 0 success; 1 the command ran and failed; 2 usage error
 * (unknown command, bad option or argument), with a message on stderr.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyhash.h"

#define EXIT_USAGE 2

typedef struct command {
    const char *name;
    const char *summary;
    const char *usage; /* printed after "usage: aetherctl " */
    const char *details;
    int (*run)(int argc, char **argv);
} command;

static int cmd_help(int argc, char **argv);
static int cmd_shard_of(int argc, char **argv);

static const command COMMANDS[] = {
    {"shard-of", "print the shard a key maps to", "shard-of KEY [--shards N]",
     "Prints the shard of KEY: XXH64(KEY bytes, seed 0) mod N, the rule every\n"
     "node uses (see tests/vectors/README.md). KEY is taken as raw bytes; use\n"
     "`--` before a KEY that starts with '-'.\n"
     "\n"
     "options:\n"
     "  -n, --shards N   shard count, 1..65536 (default 1024)\n"
     "  -h, --help       show this help\n",
     cmd_shard_of},
    {"help", "show help for aetherctl or a command", "help [COMMAND]", "", cmd_help},
};
#define COMMAND_COUNT (sizeof(COMMANDS) / sizeof(COMMANDS[0]))

static const command *find_command(const char *name)
{
    for (size_t i = 0; i < COMMAND_COUNT; i++)
        if (strcmp(COMMANDS[i].name, name) == 0)
            return &COMMANDS[i];
    return NULL;
}

static void print_usage(FILE *out)
{
    fprintf(out, "usage: aetherctl [--help] COMMAND [ARGS...]\n\ncommands:\n");
    for (size_t i = 0; i < COMMAND_COUNT; i++)
        fprintf(out, "  %-10s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    fprintf(out, "\nRun 'aetherctl help COMMAND' or 'aetherctl COMMAND --help' for details.\n");
}

static void print_command_help(FILE *out, const command *c)
{
    fprintf(out, "usage: aetherctl %s\n\n%s.\n", c->usage, c->summary);
    if (c->details[0] != '\0')
        fprintf(out, "\n%s", c->details);
}

static int usage_error(const command *c, const char *fmt, const char *arg)
{
    fprintf(stderr, "aetherctl: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    if (c != NULL)
        fprintf(stderr, "usage: aetherctl %s\n", c->usage);
    else
        fprintf(stderr, "Run 'aetherctl --help' for the list of commands.\n");
    return EXIT_USAGE;
}

/* ---- help ------------------------------------------------------------------ */

static int cmd_help(int argc, char **argv)
{
    if (argc > 2)
        return usage_error(find_command("help"), "too many arguments to help%s", "");
    if (argc == 2) {
        const command *c = find_command(argv[1]);
        if (c == NULL)
            return usage_error(NULL, "unknown command '%s'", argv[1]);
        print_command_help(stdout, c);
        return 0;
    }
    print_usage(stdout);
    return 0;
}

/* ---- shard-of -------------------------------------------------------------- */

/* A decimal integer in 1..AETHER_SHARD_COUNT_MAX, nothing else. */
static int parse_shard_count(const char *s, uint32_t *out)
{
    if (s[0] < '0' || s[0] > '9')
        return -1;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < 1 || v > AETHER_SHARD_COUNT_MAX)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static int cmd_shard_of(int argc, char **argv)
{
    const command *self = find_command("shard-of");
    static const struct option opts[] = {
        {"shards", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    uint32_t shards = AETHER_SHARD_COUNT_DEFAULT;
    int c;
    optind = 1;
    opterr = 0; /* our own messages */
    while ((c = getopt_long(argc, argv, ":n:h", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            if (parse_shard_count(optarg, &shards) != 0)
                return usage_error(self, "--shards must be an integer in 1..65536, got '%s'",
                                   optarg);
            break;
        case 'h':
            print_command_help(stdout, self);
            return 0;
        case ':':
            return usage_error(self, "option %s needs a value", argv[optind - 1]);
        default:
            return usage_error(self, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind != 1)
        return usage_error(self, argc - optind == 0 ? "missing KEY%s" : "expected one KEY%s", "");
    const char *key = argv[optind];
    printf("%u\n", aether_key_shard(key, strlen(key), shards));
    return 0;
}

/* ---- main ------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_usage(stderr);
        return EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
        print_usage(stdout);
        return 0;
    }
    if (name[0] == '-')
        return usage_error(NULL, "unknown option '%s'", name);
    const command *c = find_command(name);
    if (c == NULL)
        return usage_error(NULL, "unknown command '%s'", name);
    return c->run(argc - 1, argv + 1);
}
