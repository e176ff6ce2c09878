# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_spartan_global_optspecs
    string join \n socket= h/help V/version
end

function __fish_spartan_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_spartan_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_spartan_using_subcommand
    set -l cmd (__fish_spartan_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c spartan -n "__fish_spartan_needs_command" -l socket -d 'The control socket (default: $SPARTAN_SOCKET, else $XDG_RUNTIME_DIR/spartan.sock, else /tmp/spartan-$UID/control.sock)' -r -F
complete -c spartan -n "__fish_spartan_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c spartan -n "__fish_spartan_needs_command" -s V -l version -d 'Print version'
complete -c spartan -n "__fish_spartan_needs_command" -f -a "boot" -d 'Boot a system and serve its control socket until `spartan shutdown`, SIGTERM or SIGINT (the socket is removed then)'
complete -c spartan -n "__fish_spartan_needs_command" -f -a "run" -d 'Start a program (.wasm or .wat) as a checkpointable task'
complete -c spartan -n "__fish_spartan_needs_command" -f -a "tasks" -d 'List the tasks: id, name, state, threads, memory, policy'
complete -c spartan -n "__fish_spartan_needs_command" -f -a "kill" -d 'End a task (system services cannot be killed)'
complete -c spartan -n "__fish_spartan_needs_command" -f -a "shutdown" -d 'Stop the system'
complete -c spartan -n "__fish_spartan_needs_command" -f -a "console" -d 'Attach this terminal to a virtual console of the running system'
complete -c spartan -n "__fish_spartan_needs_command" -f -a "demo" -d 'The whole story in one run, self-contained (no system needed): tetris played by a scripted player in a simulated system, checkpointed halfway, killed, restored into a freshly booted system, and played to the end; exits 0 only when the final screen and score equal those of the uninterrupted game'
complete -c spartan -n "__fish_spartan_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c spartan -n "__fish_spartan_using_subcommand boot" -l root -d 'The host directory the VFS serves (and programs are loaded from)' -r -f -a "(__fish_complete_directories)"
complete -c spartan -n "__fish_spartan_using_subcommand boot" -l sim -d 'Run in simulation: virtual time from SEED, deterministic scheduling (paced to the host\'s clock so tasks do not run ahead)' -r
complete -c spartan -n "__fish_spartan_using_subcommand boot" -l cols -d 'Columns of the virtual consoles' -r
complete -c spartan -n "__fish_spartan_using_subcommand boot" -l rows -d 'Rows of the virtual consoles' -r
complete -c spartan -n "__fish_spartan_using_subcommand boot" -l socket -d 'The control socket (default: $SPARTAN_SOCKET, else $XDG_RUNTIME_DIR/spartan.sock, else /tmp/spartan-$UID/control.sock)' -r -F
complete -c spartan -n "__fish_spartan_using_subcommand boot" -l detach -d 'Run in the background: return once the socket accepts connections'
complete -c spartan -n "__fish_spartan_using_subcommand boot" -l log -d 'Print the kernel log (task messages, traps, exits) on stderr'
complete -c spartan -n "__fish_spartan_using_subcommand boot" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c spartan -n "__fish_spartan_using_subcommand run" -l name -d 'The task\'s name (default: the program\'s file name without extension)' -r
complete -c spartan -n "__fish_spartan_using_subcommand run" -l socket -d 'The control socket (default: $SPARTAN_SOCKET, else $XDG_RUNTIME_DIR/spartan.sock, else /tmp/spartan-$UID/control.sock)' -r -F
complete -c spartan -n "__fish_spartan_using_subcommand run" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c spartan -n "__fish_spartan_using_subcommand tasks" -l name -d 'Only tasks with this name (none: exit 1)' -r
complete -c spartan -n "__fish_spartan_using_subcommand tasks" -l socket -d 'The control socket (default: $SPARTAN_SOCKET, else $XDG_RUNTIME_DIR/spartan.sock, else /tmp/spartan-$UID/control.sock)' -r -F
complete -c spartan -n "__fish_spartan_using_subcommand tasks" -l json -d 'Print a JSON array of task objects'
complete -c spartan -n "__fish_spartan_using_subcommand tasks" -l id -d 'Print only the ids, one per line (for `chkpnt -o DIR $(spartan tasks --name N --id)`)'
complete -c spartan -n "__fish_spartan_using_subcommand tasks" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c spartan -n "__fish_spartan_using_subcommand kill" -l socket -d 'The control socket (default: $SPARTAN_SOCKET, else $XDG_RUNTIME_DIR/spartan.sock, else /tmp/spartan-$UID/control.sock)' -r -F
complete -c spartan -n "__fish_spartan_using_subcommand kill" -s h -l help -d 'Print help'
complete -c spartan -n "__fish_spartan_using_subcommand shutdown" -l socket -d 'The control socket (default: $SPARTAN_SOCKET, else $XDG_RUNTIME_DIR/spartan.sock, else /tmp/spartan-$UID/control.sock)' -r -F
complete -c spartan -n "__fish_spartan_using_subcommand shutdown" -s h -l help -d 'Print help'
complete -c spartan -n "__fish_spartan_using_subcommand console" -l socket -d 'The control socket (default: $SPARTAN_SOCKET, else $XDG_RUNTIME_DIR/spartan.sock, else /tmp/spartan-$UID/control.sock)' -r -F
complete -c spartan -n "__fish_spartan_using_subcommand console" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c spartan -n "__fish_spartan_using_subcommand demo" -l seed -d 'Seed of the simulated systems' -r
complete -c spartan -n "__fish_spartan_using_subcommand demo" -l cut -d 'Where to checkpoint, as a share of the scripted game (0 to 1)' -r
complete -c spartan -n "__fish_spartan_using_subcommand demo" -l image -d 'Keep the image at DIR (it must not exist); by default it is written to a temporary directory and removed' -r -f -a "(__fish_complete_directories)"
complete -c spartan -n "__fish_spartan_using_subcommand demo" -l socket -d 'The control socket (default: $SPARTAN_SOCKET, else $XDG_RUNTIME_DIR/spartan.sock, else /tmp/spartan-$UID/control.sock)' -r -F
complete -c spartan -n "__fish_spartan_using_subcommand demo" -l no-screens -d 'Do not print the screens at the cut and at the end'
complete -c spartan -n "__fish_spartan_using_subcommand demo" -s h -l help -d 'Print help'
complete -c spartan -n "__fish_spartan_using_subcommand help; and not __fish_seen_subcommand_from boot run tasks kill shutdown console demo help" -f -a "boot" -d 'Boot a system and serve its control socket until `spartan shutdown`, SIGTERM or SIGINT (the socket is removed then)'
complete -c spartan -n "__fish_spartan_using_subcommand help; and not __fish_seen_subcommand_from boot run tasks kill shutdown console demo help" -f -a "run" -d 'Start a program (.wasm or .wat) as a checkpointable task'
complete -c spartan -n "__fish_spartan_using_subcommand help; and not __fish_seen_subcommand_from boot run tasks kill shutdown console demo help" -f -a "tasks" -d 'List the tasks: id, name, state, threads, memory, policy'
complete -c spartan -n "__fish_spartan_using_subcommand help; and not __fish_seen_subcommand_from boot run tasks kill shutdown console demo help" -f -a "kill" -d 'End a task (system services cannot be killed)'
complete -c spartan -n "__fish_spartan_using_subcommand help; and not __fish_seen_subcommand_from boot run tasks kill shutdown console demo help" -f -a "shutdown" -d 'Stop the system'
complete -c spartan -n "__fish_spartan_using_subcommand help; and not __fish_seen_subcommand_from boot run tasks kill shutdown console demo help" -f -a "console" -d 'Attach this terminal to a virtual console of the running system'
complete -c spartan -n "__fish_spartan_using_subcommand help; and not __fish_seen_subcommand_from boot run tasks kill shutdown console demo help" -f -a "demo" -d 'The whole story in one run, self-contained (no system needed): tetris played by a scripted player in a simulated system, checkpointed halfway, killed, restored into a freshly booted system, and played to the end; exits 0 only when the final screen and score equal those of the uninterrupted game'
complete -c spartan -n "__fish_spartan_using_subcommand help; and not __fish_seen_subcommand_from boot run tasks kill shutdown console demo help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
