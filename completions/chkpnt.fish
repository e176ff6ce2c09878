complete -c chkpnt -s o -l output -d 'Directory (or, with --tar, file) to write the image to' -r -f -a "(__fish_complete_directories)"
complete -c chkpnt -l parent -d 'Write an incremental image on top of the image PARENT: only pages changed since it are stored' -r -F
complete -c chkpnt -l timeout -d 'How long to wait for each service to cooperate, in milliseconds' -r
complete -c chkpnt -l file-policy -d 'What a restore does with the files the set has open' -r -f -a "unchangeable\t'Files must not have changed at restore (size and SHA-256 checked)'
volatile\t'No checks: a missing file is closed, a shorter one read from its end'
backup-overwrite\t'A copy is stored and written back over the file at restore'
backup-skip\t'A copy is stored and written back only if the file is missing'"
complete -c chkpnt -l clients -d 'Tasks outside the set that are clients of its members (thesis 4.4.3): include them in the set, exclude them (the restored members see them gone), or refuse the checkpoint naming them' -r -f -a "include\t'They join the set'
exclude\t'They are left out; the restored members see their connections gone'
refuse\t'The checkpoint is refused, naming them'"
complete -c chkpnt -l socket -d 'The control socket' -r -F
complete -c chkpnt -l tar -d 'Write one tar file instead of a directory'
complete -c chkpnt -l leave-running -d 'Let the set run on after the checkpoint (the default)'
complete -c chkpnt -l kill -d 'Kill the set after the checkpoint'
complete -c chkpnt -l json -d 'Print the result as a JSON object'
complete -c chkpnt -s h -l help -d 'Print help (see more with \'--help\')'
complete -c chkpnt -s V -l version -d 'Print version'
