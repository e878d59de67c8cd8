/* The subcommands of `stillpoint`; each takes argv with its own name
 * first and returns the process exit code. */
#ifndef SP_COMMANDS_H
#define SP_COMMANDS_H

int cmd_backup(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_config(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_prune(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_hook(int argc, char **argv);
int cmd_state(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_mount(int argc, char **argv);
int cmd_umount(int argc, char **argv);

#endif
