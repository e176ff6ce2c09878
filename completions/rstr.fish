complete -c rstr -l timeout -d 'How long to wait for each service, in milliseconds' -r
complete -c rstr -l socket -d 'The control socket' -r -F
complete -c rstr -l err-resume -d 'If a service refuses its part, resume the restored tasks anyway instead of killing them'
complete -c rstr -l json -d 'Print the result as a JSON object'
complete -c rstr -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rstr -s V -l version -d 'Print version'
