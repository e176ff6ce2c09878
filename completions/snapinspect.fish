# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_snapinspect_global_optspecs
    string join \n h/help V/version
end

function __fish_snapinspect_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_snapinspect_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_snapinspect_using_subcommand
    set -l cmd (__fish_snapinspect_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c snapinspect -n "__fish_snapinspect_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c snapinspect -n "__fish_snapinspect_needs_command" -s V -l version -d 'Print version'
complete -c snapinspect -n "__fish_snapinspect_needs_command" -f -a "show" -d 'Print an overview of an image: tasks, threads, areas, phones, calls, cooperative blobs, modules, kernel state, stored vs. raw bytes, parent chain'
complete -c snapinspect -n "__fish_snapinspect_needs_command" -f -a "validate" -d 'Check an image and its parent chain deeply; print every problem'
complete -c snapinspect -n "__fish_snapinspect_needs_command" -f -a "diff" -d 'Compare two images: tasks, threads, areas, pages, phones, calls, blobs, kernel state'
complete -c snapinspect -n "__fish_snapinspect_needs_command" -f -a "pages" -d 'Hexdump a range of a task\'s memory as stored in an image'
complete -c snapinspect -n "__fish_snapinspect_needs_command" -f -a "pack" -d 'Pack an image directory into its single-file tar twin'
complete -c snapinspect -n "__fish_snapinspect_needs_command" -f -a "unpack" -d 'Unpack a tar image into an image directory'
complete -c snapinspect -n "__fish_snapinspect_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c snapinspect -n "__fish_snapinspect_using_subcommand show" -l task -d 'Show only this task (repeatable; default: every task)' -r
complete -c snapinspect -n "__fish_snapinspect_using_subcommand show" -l json -d 'Print the overview as JSON (for scripts)'
complete -c snapinspect -n "__fish_snapinspect_using_subcommand show" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c snapinspect -n "__fish_snapinspect_using_subcommand validate" -l json -d 'Print the problems as JSON (for scripts)'
complete -c snapinspect -n "__fish_snapinspect_using_subcommand validate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c snapinspect -n "__fish_snapinspect_using_subcommand diff" -l hexdump -d 'Also hexdump this range of memory from both images, side by side: ADDR or ADDR:LEN (hex with 0x or decimal; LEN defaults to 256)' -r
complete -c snapinspect -n "__fish_snapinspect_using_subcommand diff" -l task -d 'The task whose memory `--hexdump` shows; may be omitted when the images have exactly one task in common' -r
complete -c snapinspect -n "__fish_snapinspect_using_subcommand diff" -l json -d 'Print the differences as JSON (for scripts)'
complete -c snapinspect -n "__fish_snapinspect_using_subcommand diff" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c snapinspect -n "__fish_snapinspect_using_subcommand pages" -l task -d 'The task id (as listed by `snapinspect show`)' -r
complete -c snapinspect -n "__fish_snapinspect_using_subcommand pages" -l addr -d 'First address to dump (hex with 0x, or decimal)' -r
complete -c snapinspect -n "__fish_snapinspect_using_subcommand pages" -l len -d 'Number of bytes to dump (hex with 0x, or decimal)' -r
complete -c snapinspect -n "__fish_snapinspect_using_subcommand pages" -l json -d 'Print the bytes (hex) and page sources as JSON'
complete -c snapinspect -n "__fish_snapinspect_using_subcommand pages" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c snapinspect -n "__fish_snapinspect_using_subcommand pack" -l force -d 'Replace the tar file if it already exists; only a tar file holding an image is replaced, anything else is refused'
complete -c snapinspect -n "__fish_snapinspect_using_subcommand pack" -s h -l help -d 'Print help'
complete -c snapinspect -n "__fish_snapinspect_using_subcommand unpack" -l force -d 'Replace the directory if it already exists; only an image directory (nothing in it but the image\'s files) or an empty directory is replaced, anything else is refused'
complete -c snapinspect -n "__fish_snapinspect_using_subcommand unpack" -s h -l help -d 'Print help'
complete -c snapinspect -n "__fish_snapinspect_using_subcommand help; and not __fish_seen_subcommand_from show validate diff pages pack unpack help" -f -a "show" -d 'Print an overview of an image: tasks, threads, areas, phones, calls, cooperative blobs, modules, kernel state, stored vs. raw bytes, parent chain'
complete -c snapinspect -n "__fish_snapinspect_using_subcommand help; and not __fish_seen_subcommand_from show validate diff pages pack unpack help" -f -a "validate" -d 'Check an image and its parent chain deeply; print every problem'
complete -c snapinspect -n "__fish_snapinspect_using_subcommand help; and not __fish_seen_subcommand_from show validate diff pages pack unpack help" -f -a "diff" -d 'Compare two images: tasks, threads, areas, pages, phones, calls, blobs, kernel state'
complete -c snapinspect -n "__fish_snapinspect_using_subcommand help; and not __fish_seen_subcommand_from show validate diff pages pack unpack help" -f -a "pages" -d 'Hexdump a range of a task\'s memory as stored in an image'
complete -c snapinspect -n "__fish_snapinspect_using_subcommand help; and not __fish_seen_subcommand_from show validate diff pages pack unpack help" -f -a "pack" -d 'Pack an image directory into its single-file tar twin'
complete -c snapinspect -n "__fish_snapinspect_using_subcommand help; and not __fish_seen_subcommand_from show validate diff pages pack unpack help" -f -a "unpack" -d 'Unpack a tar image into an image directory'
complete -c snapinspect -n "__fish_snapinspect_using_subcommand help; and not __fish_seen_subcommand_from show validate diff pages pack unpack help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
