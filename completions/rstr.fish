complete -c rstr -l timeout -d 'How long to wait for each service, in milliseconds' -r
complete -c rstr -l missing -d 'A service the image names that no running task provides (thesis 4.4.7): cancel the restore, or hang up the restored tasks\' connections to it (their calls fail with EHANGUP)' -r -f -a "cancel\t'Refuse the restore, naming the service'
hang-up\t'Hang up the connections to it'"
complete -c rstr -l duplicate -d 'A service provided by more than one running task: cancel, hang up, or replace (the one the naming service registered serves, the others are killed once the restore succeeded)' -r -f -a "cancel\t'Refuse the restore, naming the service and its tasks'
hang-up\t'Hang up the connections to it'
replace\t'The registered provider serves; the others are killed'"
complete -c rstr -l socket -d 'The control socket' -r -F
complete -c rstr -l err-resume -d 'If a service refuses its part, resume the restored tasks anyway instead of killing them'
complete -c rstr -l eager -d 'Load every page of the image before the tasks resume. By default they resume at once and each page is read, checked and decompressed when first touched, the rest in the background: keep the image in place until then (a page that fails its checks then, or an image removed, kills every restored task; `--err-resume` does not cover it)'
complete -c rstr -l json -d 'Print the result as a JSON object'
complete -c rstr -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rstr -s V -l version -d 'Print version'
