# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_webntpd_global_optspecs
    string join \n log-level= h/help V/version
end

function __fish_webntpd_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_webntpd_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_webntpd_using_subcommand
    set -l cmd (__fish_webntpd_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c webntpd -n "__fish_webntpd_needs_command" -l log-level -d 'Log level: error, warn, info (the default), debug or trace; for `run`, overrides the configuration\'s [log] level. RUST_LOG, when set, overrides both (e.g. RUST_LOG=webntpd=debug)' -r
complete -c webntpd -n "__fish_webntpd_needs_command" -s h -l help -d 'Print help'
complete -c webntpd -n "__fish_webntpd_needs_command" -s V -l version -d 'Print version'
complete -c webntpd -n "__fish_webntpd_needs_command" -f -a "serve" -d 'Serve WebNTP over HTTP(S) and WebSocket until SIGTERM or SIGINT'
complete -c webntpd -n "__fish_webntpd_needs_command" -f -a "query" -d 'Measure the local clock against WebNTP servers once and print the offsets'
complete -c webntpd -n "__fish_webntpd_needs_command" -f -a "check-config" -d 'Check a configuration file and exit: 0 if it is usable (warnings are printed), 78 if it is wrong (every error is printed with its line and column), 66 if it cannot be read'
complete -c webntpd -n "__fish_webntpd_needs_command" -f -a "run" -d 'Run the daemon in the foreground: poll the configured sources, feed the outputs, serve if [server] is configured (the systemd unit\'s ExecStart)'
complete -c webntpd -n "__fish_webntpd_needs_command" -f -a "status" -d 'Show what the running daemon is doing: sources, selection, outputs, leap status'
complete -c webntpd -n "__fish_webntpd_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c webntpd -n "__fish_webntpd_using_subcommand serve" -l listen -d 'Serve plain HTTP and ws:// on ADDR (IP:PORT, [IPv6]:PORT or :PORT for every address). Repeatable. Default 127.0.0.1:8080 when no --listen or --tls-listen is given' -r
complete -c webntpd -n "__fish_webntpd_using_subcommand serve" -l tls-listen -d 'Serve HTTPS and wss:// on ADDR (needs --tls-cert and --tls-key). Repeatable' -r
complete -c webntpd -n "__fish_webntpd_using_subcommand serve" -l tls-cert -d 'PEM certificate chain for --tls-listen, leaf first' -r -F
complete -c webntpd -n "__fish_webntpd_using_subcommand serve" -l tls-key -d 'PEM private key for --tls-listen' -r -F
complete -c webntpd -n "__fish_webntpd_using_subcommand serve" -l id -d 'The `id` field of every reply. Default: the request\'s Host header, as go-webntp' -r
complete -c webntpd -n "__fish_webntpd_using_subcommand serve" -l allow-origin -d 'Browser origin allowed to use the server (CORS and WebSocket Origin), e.g. https://clock.example.org. Repeatable. Default `*`: any origin' -r
complete -c webntpd -n "__fish_webntpd_using_subcommand serve" -l clock-page -d 'Serve the clock page for browsers at PATH, and its leap-second state at PATH/leap; `off`: no page, every path answers WebNTP JSON as go-webntp' -r
complete -c webntpd -n "__fish_webntpd_using_subcommand serve" -l clock-peer -d 'Another WebNTP server the clock page also asks and compares (http://, https://, ws:// or wss:// URL; it must let this server\'s origin in). Repeatable, at most 8' -r
complete -c webntpd -n "__fish_webntpd_using_subcommand serve" -l leap-seconds -d 'leap-seconds.list to report leap seconds from' -r -F
complete -c webntpd -n "__fish_webntpd_using_subcommand serve" -l leap-seconds-url -d 'Refresh the leap-seconds list from URL (off by default: the server reaches the internet only when told to)' -r
complete -c webntpd -n "__fish_webntpd_using_subcommand serve" -l leap-seconds-cache -d 'Where refreshed leap-seconds lists are kept. Default: leap-seconds.list in the unit\'s StateDirectory under systemd ($STATE_DIRECTORY: /var/lib/webntpd for webntpd.service, /var/lib/webntpd-server for webntpd-server.service), else in /var/lib/webntpd' -r -F
complete -c webntpd -n "__fish_webntpd_using_subcommand serve" -l leap-seconds-refresh -d 'How often to refresh the leap-seconds list (with --leap-seconds-url)' -r
complete -c webntpd -n "__fish_webntpd_using_subcommand serve" -l header-read-timeout -d 'Time allowed for a request head (and a TLS handshake) to arrive' -r
complete -c webntpd -n "__fish_webntpd_using_subcommand serve" -l keepalive-timeout -d 'Close an HTTP connection idle for this long' -r
complete -c webntpd -n "__fish_webntpd_using_subcommand serve" -l max-header-bytes -d 'Largest request head in bytes (minimum 8192); larger gets 431' -r
complete -c webntpd -n "__fish_webntpd_using_subcommand serve" -l max-connections -d 'Most connections open at once; more wait to be accepted' -r
complete -c webntpd -n "__fish_webntpd_using_subcommand serve" -l ws-idle-timeout -d 'Close a WebSocket that sends nothing for this long' -r
complete -c webntpd -n "__fish_webntpd_using_subcommand serve" -l shutdown-timeout -d 'How long shutdown waits for in-flight requests' -r
complete -c webntpd -n "__fish_webntpd_using_subcommand serve" -l ntp -d 'Also serve NTP (RFC 5905, v3 and v4 client requests) on UDP ADDR (IP:PORT, [IPv6]:PORT or :PORT), from the local clock as the HTTP side. Repeatable; off unless given' -r
complete -c webntpd -n "__fish_webntpd_using_subcommand serve" -l ntp-clock -d 'Whose word the NTP time rests on: `kernel` (answer as synchronised only while the kernel says a time daemon vouches for the clock, with its maximum error) or `local` (always, as chrony\'s `local stratum`)' -r
complete -c webntpd -n "__fish_webntpd_using_subcommand serve" -l ntp-stratum -d 'The stratum NTP replies state while synchronised (1-15)' -r
complete -c webntpd -n "__fish_webntpd_using_subcommand serve" -l ntp-allow -d 'Answer NTP only from this address block (CIDR or address). Repeatable; default: all' -r
complete -c webntpd -n "__fish_webntpd_using_subcommand serve" -l ntp-deny -d 'Never answer NTP from this address block (CIDR or address). Repeatable' -r
complete -c webntpd -n "__fish_webntpd_using_subcommand serve" -l ntp-rate-interval -d 'A client\'s average NTP request interval beyond its burst; `off`: no rate limit' -r
complete -c webntpd -n "__fish_webntpd_using_subcommand serve" -l ntp-rate-burst -d 'NTP requests a client may send at once before the rate limit applies (1-1024)' -r
complete -c webntpd -n "__fish_webntpd_using_subcommand serve" -l metrics -d 'Serve Prometheus/OpenMetrics metrics (GET /metrics) on ADDR, a listener of its own (e.g. 127.0.0.1:9975; keep it on loopback or firewall it). Off by default' -r
complete -c webntpd -n "__fish_webntpd_using_subcommand serve" -l log-level -d 'Log level: error, warn, info (the default), debug or trace; for `run`, overrides the configuration\'s [log] level. RUST_LOG, when set, overrides both (e.g. RUST_LOG=webntpd=debug)' -r
complete -c webntpd -n "__fish_webntpd_using_subcommand serve" -l ntp-kod -d 'Answer a rate-limited NTP client with a Kiss-o\'-Death RATE (at most one per interval) instead of silence'
complete -c webntpd -n "__fish_webntpd_using_subcommand serve" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c webntpd -n "__fish_webntpd_using_subcommand query" -s n -l samples -d 'Samples per server; the one with the smallest delay is kept' -r
complete -c webntpd -n "__fish_webntpd_using_subcommand query" -l timeout -d 'Longest a single exchange, a connection or a TLS handshake may take (e.g. 2s, 500ms)' -r
complete -c webntpd -n "__fish_webntpd_using_subcommand query" -l mode -d 'auto (from the URL), json, ws, toh (Time over HTTPS: HEAD /.well-known/time), or date (any web server\'s Date: header, bisected to milliseconds)' -r
complete -c webntpd -n "__fish_webntpd_using_subcommand query" -l proxy -d 'Connect through this HTTP proxy (CONNECT). Default: https_proxy/http_proxy/no_proxy' -r
complete -c webntpd -n "__fish_webntpd_using_subcommand query" -l cacert -d 'Also trust the CA certificates in this PEM file (besides the system\'s). Repeatable' -r -F
complete -c webntpd -n "__fish_webntpd_using_subcommand query" -l shm -d 'Write the best result once to SHM unit UNIT (0-255, key 0x4E545030+UNIT) for ntpd (server 127.127.28.UNIT), ntpsec (refclock shm unit UNIT) or chrony (refclock SHM UNIT). Repeatable' -r
complete -c webntpd -n "__fish_webntpd_using_subcommand query" -l shm-perm -d 'Permissions for an SHM segment webntpd creates (octal). Default 0600 for units 0-1, 0666 from 2 up: any local user can then write to it' -r
complete -c webntpd -n "__fish_webntpd_using_subcommand query" -l sock -d 'Send the best result once to chronyd\'s SOCK refclock socket at PATH (refclock SOCK PATH). Repeatable' -r -F
complete -c webntpd -n "__fish_webntpd_using_subcommand query" -l panic-threshold -d 'With --shm/--sock: an offset larger than this is not written (ntpd\'s panic gate)' -r
complete -c webntpd -n "__fish_webntpd_using_subcommand query" -l log-level -d 'Log level: error, warn, info (the default), debug or trace; for `run`, overrides the configuration\'s [log] level. RUST_LOG, when set, overrides both (e.g. RUST_LOG=webntpd=debug)' -r
complete -c webntpd -n "__fish_webntpd_using_subcommand query" -l json -d 'One JSON object per server on stdout (offset, delay, jitter in seconds)'
complete -c webntpd -n "__fish_webntpd_using_subcommand query" -l no-proxy -d 'Ignore proxy environment variables: connect directly'
complete -c webntpd -n "__fish_webntpd_using_subcommand query" -l no-rt -d 'Ignore the server\'s receive time (rt) and estimate from st alone, as go-webntp does: to see what the four-timestamp method buys'
complete -c webntpd -n "__fish_webntpd_using_subcommand query" -l allow-step -d 'With --shm/--sock: write the result even beyond --panic-threshold (ntpd -g), to set a clock that is far off. A time before this build was made is never written'
complete -c webntpd -n "__fish_webntpd_using_subcommand query" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c webntpd -n "__fish_webntpd_using_subcommand check-config" -s c -l config -d 'The configuration file' -r -F
complete -c webntpd -n "__fish_webntpd_using_subcommand check-config" -l log-level -d 'Log level: error, warn, info (the default), debug or trace; for `run`, overrides the configuration\'s [log] level. RUST_LOG, when set, overrides both (e.g. RUST_LOG=webntpd=debug)' -r
complete -c webntpd -n "__fish_webntpd_using_subcommand check-config" -s h -l help -d 'Print help'
complete -c webntpd -n "__fish_webntpd_using_subcommand run" -s c -l config -d 'The configuration file' -r -F
complete -c webntpd -n "__fish_webntpd_using_subcommand run" -l log-level -d 'Log level: error, warn, info (the default), debug or trace; for `run`, overrides the configuration\'s [log] level. RUST_LOG, when set, overrides both (e.g. RUST_LOG=webntpd=debug)' -r
complete -c webntpd -n "__fish_webntpd_using_subcommand run" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c webntpd -n "__fish_webntpd_using_subcommand status" -s c -l config -d 'The configuration file' -r -F
complete -c webntpd -n "__fish_webntpd_using_subcommand status" -l socket -d 'Ask this socket instead of the one the configuration names' -r -F
complete -c webntpd -n "__fish_webntpd_using_subcommand status" -l format -d 'How to print the status: a table, JSON, or the Prometheus text format of the metrics endpoint (for node-exporter\'s textfile collector)' -r -f -a "table\t'A table, like `chronyc sources`'
json\t'The status document as the socket sends it'
prometheus\t'The metrics, in the Prometheus text format (node-exporter\'s textfile collector)'"
complete -c webntpd -n "__fish_webntpd_using_subcommand status" -l wait-sync -d 'Wait until the daemon is synchronised (it has written a combined offset that the selection and the sanity rules accepted), at most TIMEOUT (e.g. 2m; without one, as long as it takes), checking every second; then print the status. Like `chronyc waitsync`, for scripts and ExecStartPost= of units that need good time' -r
complete -c webntpd -n "__fish_webntpd_using_subcommand status" -l log-level -d 'Log level: error, warn, info (the default), debug or trace; for `run`, overrides the configuration\'s [log] level. RUST_LOG, when set, overrides both (e.g. RUST_LOG=webntpd=debug)' -r
complete -c webntpd -n "__fish_webntpd_using_subcommand status" -l json -d 'Print the status as JSON (offsets and delays in seconds); the same as --format json'
complete -c webntpd -n "__fish_webntpd_using_subcommand status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c webntpd -n "__fish_webntpd_using_subcommand help; and not __fish_seen_subcommand_from serve query check-config run status help" -f -a "serve" -d 'Serve WebNTP over HTTP(S) and WebSocket until SIGTERM or SIGINT'
complete -c webntpd -n "__fish_webntpd_using_subcommand help; and not __fish_seen_subcommand_from serve query check-config run status help" -f -a "query" -d 'Measure the local clock against WebNTP servers once and print the offsets'
complete -c webntpd -n "__fish_webntpd_using_subcommand help; and not __fish_seen_subcommand_from serve query check-config run status help" -f -a "check-config" -d 'Check a configuration file and exit: 0 if it is usable (warnings are printed), 78 if it is wrong (every error is printed with its line and column), 66 if it cannot be read'
complete -c webntpd -n "__fish_webntpd_using_subcommand help; and not __fish_seen_subcommand_from serve query check-config run status help" -f -a "run" -d 'Run the daemon in the foreground: poll the configured sources, feed the outputs, serve if [server] is configured (the systemd unit\'s ExecStart)'
complete -c webntpd -n "__fish_webntpd_using_subcommand help; and not __fish_seen_subcommand_from serve query check-config run status help" -f -a "status" -d 'Show what the running daemon is doing: sources, selection, outputs, leap status'
complete -c webntpd -n "__fish_webntpd_using_subcommand help; and not __fish_seen_subcommand_from serve query check-config run status help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
