//! What `packaging/` ships that is generated: the man pages `webntpd(8)` (from the clap
//! definitions in `src/cli.rs`, with clap_mangen) and `webntpd.toml(5)` (from [`SCHEMA`] and,
//! for `[server]`, from the flags of `webntpd serve`, which are the same struct), and the
//! bash, zsh and fish completions (clap_complete). Generation lives in the tests so that
//! neither crate is linked into the binary; `tests/it/docs.rs` compares the committed files
//! with what this produces and rewrites them when `WEBNTPD_REGENERATE=1`.

use std::io::Write;

use clap::CommandFactory;
use clap_complete::Shell;
use roff::{bold, italic, roman, Roff};

use webntpd::cli::Cli;

/// Every generated file: its path under the repository, and its contents.
pub fn all() -> Vec<(&'static str, Vec<u8>)> {
    let mut files = vec![
        ("packaging/man/webntpd.8", webntpd_8().into_bytes()),
        (
            "packaging/man/webntpd.toml.5",
            webntpd_toml_5().into_bytes(),
        ),
    ];
    for (shell, path) in [
        (Shell::Bash, "packaging/completions/webntpd.bash"),
        (Shell::Zsh, "packaging/completions/_webntpd"),
        (Shell::Fish, "packaging/completions/webntpd.fish"),
    ] {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "webntpd", &mut out);
        files.push((path, out));
    }
    files
}

/// roff writes this at the top of every piece it renders; a page keeps only the first.
const PREAMBLE: &str = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";

fn render(pieces: impl IntoIterator<Item = Vec<u8>>) -> String {
    let mut page = String::from(PREAMBLE);
    for piece in pieces {
        let text = String::from_utf8(piece).expect("roff output is UTF-8");
        page.push_str(text.strip_prefix(PREAMBLE).unwrap_or(&text));
    }
    page
}

/// A section rendered by clap_mangen, without its `.SH` line.
fn body(render: impl Fn(&mut dyn Write) -> std::io::Result<()>) -> Vec<u8> {
    let mut out = Vec::new();
    render(&mut out).expect("rendering to memory");
    let text = String::from_utf8(out).expect("roff output is UTF-8");
    let text = text.strip_prefix(PREAMBLE).unwrap_or(&text);
    let mut lines: Vec<&str> = text.lines().collect();
    if lines.first().is_some_and(|l| l.starts_with(".SH")) {
        lines.remove(0);
    }
    let mut s = lines.join("\n");
    if !s.is_empty() {
        s.push('\n');
    }
    s.into_bytes()
}

fn piece(roff: &Roff) -> Vec<u8> {
    roff.render().into_bytes()
}

/// A section of plain paragraphs; an empty string starts a new paragraph.
fn section(title: &str, paragraphs: &[&str]) -> Vec<u8> {
    let mut r = Roff::new();
    r.control("SH", [title]);
    for p in paragraphs {
        if p.is_empty() {
            r.control("PP", []);
        } else {
            r.text([roman(*p)]);
        }
    }
    piece(&r)
}

/// A section of `.TP` items: (tag, text).
fn items(title: &str, intro: &str, list: &[(&str, &str)]) -> Vec<u8> {
    let mut r = Roff::new();
    r.control("SH", [title]);
    if !intro.is_empty() {
        r.text([roman(intro)]);
    }
    for (tag, text) in list {
        r.control("TP", []);
        r.text([bold(*tag)]);
        r.text([roman(*text)]);
    }
    piece(&r)
}

/// `webntpd(8)`: the command, then every subcommand with its synopsis, description and
/// options, then exit status, signals, files, environment.
pub fn webntpd_8() -> String {
    let mut cmd = Cli::command();
    cmd.build();
    let man = clap_mangen::Man::new(cmd.clone())
        .section("8")
        .manual("System Manager's Manual");
    let mut pieces = Vec::new();
    let mut top = Vec::new();
    man.render_title(&mut top).unwrap();
    man.render_name_section(&mut top).unwrap();
    man.render_synopsis_section(&mut top).unwrap();
    pieces.push(top);
    pieces.push(section(
        "DESCRIPTION",
        &[
            "webntpd serves the time of a well-synchronised host over HTTP(S) and WebSocket in \
             the WebNTP protocol of go-webntp, in the formats of NICT's retired http time \
             service and as Time over HTTPS (HEAD /.well-known/time); it measures the local \
             clock against such servers; and, as a daemon, it polls them, keeps the ones that \
             agree, and feeds the combined offset to chrony, ntpd or ntpsec through their SHM \
             and SOCK reference clocks. webntpd never sets the clock itself.",
            "",
            "The daemon is configured in /etc/webntpd.toml (see webntpd.toml(5)) and runs as \
             webntpd.service; a plain server runs as webntpd-server.service with its flags in \
             /etc/default/webntpd-server.",
        ],
    ));
    let mut global = Vec::new();
    man.render_options_section(&mut global).unwrap();
    pieces.push(global);

    let mut r = Roff::new();
    r.control("SH", ["COMMANDS"]);
    pieces.push(piece(&r));
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = format!("webntpd {}", sub.get_name());
        let mut r = Roff::new();
        r.control("SS", [name.as_str()]);
        pieces.push(piece(&r));
        // The global --log-level is described once, above.
        let sub = sub
            .clone()
            .mut_args(|a| if a.is_global_set() { a.hide(true) } else { a });
        let m = clap_mangen::Man::new(sub);
        pieces.push(body(|w| m.render_synopsis_section(w)));
        pieces.push(b".PP\n".to_vec());
        pieces.push(body(|w| m.render_description_section(w)));
        pieces.push(body(|w| m.render_options_section(w)));
    }

    pieces.push(items(
        "EXIT STATUS",
        "Codes follow sysexits.h; each command's description above says which it uses.",
        &[
            ("0", "Success."),
            ("64", "Usage error: a bad flag or argument."),
            (
                "65",
                "Data refused: the servers disagree, or a sanity rule forbids the offset.",
            ),
            (
                "66",
                "A file cannot be read: the configuration, a certificate.",
            ),
            (
                "69",
                "Unavailable: no server answered, no daemon answers, a port is in use, an \
                 output cannot be used.",
            ),
            ("71", "Another system error."),
            ("77", "Permission denied."),
            ("78", "The configuration is wrong."),
        ],
    ));
    pieces.push(items(
        "SIGNALS",
        "For run and serve:",
        &[
            (
                "SIGHUP",
                "run: reload the configuration (a broken one is refused and the running one \
                 stays); serve: reload the TLS certificate and the leap-seconds list. \
                 systemctl reload sends it; for webntpd.service, after check-config.",
            ),
            (
                "SIGTERM, SIGINT",
                "Stop cleanly: finish requests in flight, detach the outputs.",
            ),
        ],
    ));
    pieces.push(items(
        "FILES",
        "",
        &[
            (
                "/etc/webntpd.toml",
                "The daemon's configuration; see webntpd.toml(5).",
            ),
            (
                "/etc/default/webntpd-server",
                "WEBNTPD_SERVE_ARGS, the flags of webntpd-server.service.",
            ),
            (
                "/run/webntpd/status.sock",
                "The daemon's status socket, read by webntpd status.",
            ),
            (
                "/var/lib/webntpd, /var/lib/webntpd-server",
                "The units' state directories: the cache of downloaded leap-seconds lists.",
            ),
            (
                "/usr/share/zoneinfo/leap-seconds.list",
                "The leap-seconds list served by default (tzdata).",
            ),
            (
                "/usr/share/doc/webntpd/",
                "README.md, the overview; docs/operating.md, the operator's manual with \
                 troubleshooting; docs/protocol.md, the wire formats; examples/, the example \
                 configurations.",
            ),
        ],
    ));
    pieces.push(items(
        "ENVIRONMENT",
        "",
        &[
            (
                "RUST_LOG",
                "Overrides the log level, as a level (debug) or per module \
                 (webntpd::client=debug,info).",
            ),
            (
                "https_proxy, http_proxy, no_proxy",
                "The proxy for sources and query, as curl reads them, unless told otherwise.",
            ),
            (
                "STATE_DIRECTORY, NOTIFY_SOCKET, JOURNAL_STREAM, WATCHDOG_USEC",
                "Set by systemd: where the leap-seconds cache goes, readiness and watchdog \
                 notifications, logging to the journal.",
            ),
        ],
    ));
    pieces.push(section(
        "SEE ALSO",
        &["webntpd.toml(5), chronyd(8), chrony.conf(5), ntpd(8), systemctl(1), journalctl(1)"],
    ));
    render(pieces)
}

/// One key of the configuration file, as the man page documents it.
pub struct Key {
    pub name: &'static str,
    /// The TOML type, and what it holds.
    pub kind: &'static str,
    /// The default, or "required".
    pub default: &'static str,
    pub text: &'static str,
}

/// One table of the configuration file.
pub struct Table {
    /// Its name in the file (`source`, `output`, `server`, ...), as the reader's messages
    /// call it without brackets.
    pub name: &'static str,
    /// How it is written: `[[source]]`, `[selection]`.
    pub header: &'static str,
    pub text: &'static str,
    /// The keys; `[server]`'s come from the serve flags instead (see [`server_keys`]).
    pub keys: &'static [Key],
}

macro_rules! key {
    ($name:literal, $kind:literal, $default:literal, $text:literal) => {
        Key {
            name: $name,
            kind: $kind,
            default: $default,
            text: $text,
        }
    };
}

/// The configuration file's schema, for the man page. tests/it/docs.rs checks that its keys are
/// exactly those the reader accepts (and that config/webntpd.toml shows each).
pub const SCHEMA: &[Table] = &[
    Table {
        name: "source",
        header: "[[source]]",
        text: "One table per WebNTP server polled; any number. Three or more independent \
               servers let the majority outvote one that is wrong.",
        keys: &[
            key!(
                "url",
                "string",
                "required",
                "The server: https:// or http:// (WebNTP JSON, GET url?<time>), wss:// or \
                  ws:// (WebSocket). Plain http:// and ws:// are not encrypted: anyone on the \
                  path can shift the clock."
            ),
            key!(
                "mode",
                "string",
                "\"auto\"",
                "How to talk to it: auto (from the URL: http(s) is json, ws(s) is ws), json \
                  (WebNTP JSON over HTTP/1.1), ws (WebSocket), toh (Time over HTTPS: HEAD \
                  /.well-known/time), date (any web server's Date: header, bisected to a few \
                  milliseconds; a last resort)."
            ),
            key!(
                "samples",
                "integer",
                "8",
                "Exchanges per burst, 1 to 64; the one with the smallest round trip is used."
            ),
            key!(
                "poll",
                "duration",
                "\"64s\"",
                "Time between bursts while the source answers."
            ),
            key!(
                "poll_min",
                "duration",
                "poll",
                "The wait after a failed burst; each further failure doubles it, up to \
                  poll_max; the first answer returns to poll. poll_min <= poll <= poll_max, and \
                  poll_min must be at least (samples + 3) x timeout, the longest a burst takes."
            ),
            key!(
                "poll_max",
                "duration",
                "16 x poll",
                "The longest wait while failures go on."
            ),
            key!(
                "timeout",
                "duration",
                "\"5s\"",
                "Bound on the connection, the TLS handshake and each exchange."
            ),
            key!(
                "proxy",
                "string",
                "\"env\"",
                "HTTP proxy (CONNECT) for this source: http://[user:password@]host:port, \
                  \"none\" to connect directly, or \"env\" for https_proxy, http_proxy and \
                  no_proxy as curl reads them."
            ),
            key!(
                "cacert",
                "array of strings",
                "[]",
                "PEM files of extra CA certificates to trust for this source, besides the \
                  system's."
            ),
            key!(
                "weight",
                "float",
                "1.0",
                "Relative weight when agreeing sources are combined (each is already weighted \
                  by its error)."
            ),
            key!(
                "noselect",
                "boolean",
                "false",
                "Measure and show the source in webntpd status, but never use it for the time."
            ),
            key!(
                "rt",
                "boolean",
                "true",
                "Use the server's receive timestamp (rt) to remove its processing time from \
                  the round trip; false uses its send time only, as go-webntp clients do."
            ),
        ],
    },
    Table {
        name: "output",
        header: "[[output]]",
        text: "Where the combined offset goes; any number. Nothing is written while too few \
               sources agree: the reader then sees the reference clock go stale, never a wrong \
               time.",
        keys: &[
            key!(
                "type",
                "string",
                "required",
                "\"sock\": chrony's SOCK reference clock (chrony.conf: refclock SOCK PATH \
                  refid WNTP poll 2 delay 0.01 precision 1e-3), the better choice with chrony. \
                  \"shm\": a System V shared-memory segment, for ntpd (server 127.127.28.UNIT), \
                  ntpsec (refclock shm unit UNIT) and chrony (refclock SHM UNIT). \"ntp\": an \
                  NTP server answering from the combined offset (operating.md, The NTP \
                  server)."
            ),
            key!(
                "path",
                "string",
                "required for sock",
                "type = \"sock\": the absolute path of the datagram socket chronyd creates."
            ),
            key!(
                "unit",
                "integer",
                "required for shm",
                "type = \"shm\": the unit, 0 to 255, key 0x4E545030 + unit. Units 0 and 1 are \
                  root-only."
            ),
            key!(
                "perm",
                "string or integer",
                "\"0600\" for units 0-1, \"0666\" from 2",
                "type = \"shm\": the mode of a segment webntpd creates, octal (\"0600\" or \
                  0o600). 0666 lets any local user feed the reader a time: say 0600 when the \
                  reader runs as root. A segment the daemon created is removed when it stops \
                  and no reader is attached."
            ),
            key!(
                "listen",
                "list of strings",
                "[\"127.0.0.1:123\"]",
                "type = \"ntp\": the UDP addresses (IP:PORT, [IPv6]:PORT, :PORT). Port 123 \
                  needs CAP_NET_BIND_SERVICE."
            ),
            key!(
                "stratum",
                "integer",
                "3",
                "type = \"ntp\": the stratum stated while synchronised, 1 to 15 (16 is said \
                  by webntpd itself while unsynchronised)."
            ),
            key!(
                "clock",
                "string",
                "\"auto\"",
                "type = \"ntp\": who keeps this host's clock. \"free\": nobody, the combined \
                  offset is added to it; \"disciplined\": chrony or ntpd, it is served as it is \
                  and the offset goes into the root dispersion; \"auto\": disciplined when the \
                  kernel (adjtimex, read only) says a time daemon vouches for the clock or an \
                  shm or sock output feeds one, else free."
            ),
            key!(
                "allow",
                "list of strings",
                "everyone",
                "type = \"ntp\": the address blocks answered (\"192.168.1.0/24\", an \
                  address), at most 256."
            ),
            key!(
                "deny",
                "list of strings",
                "none",
                "type = \"ntp\": address blocks never answered, even inside allow."
            ),
            key!(
                "rate_interval",
                "duration or \"off\"",
                "\"1s\"",
                "type = \"ntp\": a client's average request interval after its burst."
            ),
            key!(
                "rate_burst",
                "integer",
                "16",
                "type = \"ntp\": requests a client may send at once, 1 to 1024."
            ),
            key!(
                "rate_clients",
                "integer",
                "8192",
                "type = \"ntp\": clients the rate-limit table holds, 16 to 1048576."
            ),
            key!(
                "kod",
                "boolean",
                "false",
                "type = \"ntp\": send a rate-limited client a Kiss-o'-Death RATE (one per \
                  rate_interval) instead of nothing."
            ),
            key!(
                "max_age",
                "duration",
                "\"1h\"",
                "type = \"ntp\": a combined offset older than this is not served; the server \
                  then answers as unsynchronised (leap 3, stratum 16)."
            ),
        ],
    },
    Table {
        name: "server",
        header: "[server]",
        text: "Also serve WebNTP, as webntpd serve does; without this table nothing is served. \
               Every key is the serve flag of the same name (see webntpd(8)), with _ for -. \
               Changes apply at a restart, not at a reload.",
        keys: &[],
    },
    Table {
        name: "selection",
        header: "[selection]",
        text: "How measurements from several sources become one.",
        keys: &[
            key!(
                "min_sources",
                "integer",
                "1",
                "How many sources must agree (their offset +- error intervals overlap) before \
                  anything is written. With three sources, 2 means one wrong server cannot move \
                  the clock."
            ),
            key!(
                "max_error",
                "duration",
                "\"1s\"",
                "A source whose error bound is larger than this is left out."
            ),
        ],
    },
    Table {
        name: "sanity",
        header: "[sanity]",
        text: "What is never written, whatever the sources say.",
        keys: &[
            key!(
                "panic_threshold",
                "duration",
                "\"1000s\"",
                "No combined offset larger than this is written (ntpd's panic gate). A time \
                  before this build of webntpd was made is never written either."
            ),
            key!(
                "allow_startup_step",
                "boolean",
                "false",
                "Let the first sample after start past panic_threshold (ntpd -g), for a host \
                  whose clock starts far off. Logged when used."
            ),
        ],
    },
    Table {
        name: "log",
        header: "[log]",
        text: "Logging. Changes apply at a restart.",
        keys: &[
            key!(
                "level",
                "string",
                "\"info\"",
                "error, warn, info, debug or trace. RUST_LOG, when set, overrides it."
            ),
            key!(
                "target",
                "string",
                "\"auto\"",
                "auto: journald, with structured fields, under systemd, stderr otherwise; \
                  journald; stderr."
            ),
        ],
    },
    Table {
        name: "status",
        header: "[status]",
        text: "The status socket. Changes apply at a restart.",
        keys: &[key!(
            "socket",
            "string",
            "\"/run/webntpd/status.sock\"",
            "The read-only JSON socket webntpd status reads; an absolute path."
        )],
    },
    Table {
        name: "metrics",
        header: "[metrics]",
        text: "The Prometheus/OpenMetrics endpoint: GET /metrics on a listener of its own, with \
               the sources, the selection, the outputs, reloads and the built-in server's \
               counters (the same as webntpd status --format prometheus). Off without this \
               table. Changes apply at a restart.",
        keys: &[key!(
            "listen",
            "string",
            "\"127.0.0.1:9975\"",
            "The one address it listens on (IP:PORT, [IPv6]:PORT or :PORT). Anyone who can \
             reach it reads the source URLs: keep it on loopback or firewall it."
        )],
    },
];

/// `[server]`'s keys: the flags of `webntpd serve` (one struct, `ServerSettings`), with
/// their help and defaults: (key, value name, default, help).
pub fn server_keys() -> Vec<(String, String, Option<String>, String)> {
    let mut cmd = Cli::command();
    cmd.build();
    let serve = cmd
        .find_subcommand("serve")
        .expect("webntpd has a serve subcommand");
    serve
        .get_arguments()
        .filter(|a| !a.is_global_set() && !a.is_hide_set() && a.get_long().is_some())
        .filter(|a| !matches!(a.get_id().as_str(), "help" | "version"))
        // `serve --metrics` is `[metrics] listen` in the file, a table of its own.
        .filter(|a| a.get_id() != "metrics")
        .map(|a| {
            let help = a
                .get_long_help()
                .or(a.get_help())
                .map(|h| h.to_string())
                .unwrap_or_default();
            let value = a.get_value_names().map(|v| v.join(" ")).unwrap_or_default();
            let default = a
                .get_default_values()
                .first()
                .map(|d| d.to_string_lossy().into_owned());
            (a.get_id().to_string(), value, default, help)
        })
        .collect()
}

/// `webntpd.toml(5)`.
pub fn webntpd_toml_5() -> String {
    let mut pieces = Vec::new();
    let mut r = Roff::new();
    r.control(
        "TH",
        [
            "webntpd.toml",
            "5",
            "",
            &format!("webntpd {}", env!("CARGO_PKG_VERSION")),
            "File Formats Manual",
        ],
    );
    r.control("SH", ["NAME"]);
    r.text([roman(
        "webntpd.toml - configuration of the webntpd daemon (webntpd run)",
    )]);
    r.control("SH", ["SYNOPSIS"]);
    r.text([bold("/etc/webntpd.toml")]);
    pieces.push(piece(&r));
    pieces.push(section(
        "DESCRIPTION",
        &[
            "A TOML file read by webntpd run and webntpd check-config (-c PATH names another). \
             It is read strictly: a key not listed here, a value of the wrong type and a \
             setting that parses but cannot work are errors, each reported with its line and \
             column, all in one run. Check the file after every edit with webntpd check-config \
             and apply it with systemctl reload webntpd (SIGHUP): a file that does not pass is \
             refused and the running configuration stays.",
            "",
            "Durations are quoted strings: \"500ms\", \"5s\", \"64s\", \"17m\", \"1h\", \"1d\". \
             /usr/share/doc/webntpd/examples/webntpd.toml shows every key with a comment.",
        ],
    ));
    for table in SCHEMA {
        let mut r = Roff::new();
        r.control("SH", [table.header]);
        r.text([roman(table.text)]);
        for k in table.keys {
            r.control("TP", []);
            r.text([
                bold(k.name),
                roman(" = "),
                italic(k.kind),
                roman(format!(" (default: {})", k.default)),
            ]);
            r.text([roman(k.text)]);
        }
        if table.name == "server" {
            for (name, value, default, help) in server_keys() {
                r.control("TP", []);
                let mut tag = vec![bold(name.clone()), roman(" = "), italic(value)];
                if let Some(d) = default {
                    tag.push(roman(format!(" (default: \"{d}\")")));
                }
                r.text(tag);
                for (i, para) in help.split("\n\n").enumerate() {
                    if i > 0 {
                        r.control("IP", []);
                    }
                    r.text([roman(para.replace('\n', " "))]);
                }
            }
        }
        pieces.push(piece(&r));
    }
    let mut r = Roff::new();
    r.control("SH", ["EXAMPLE"]);
    r.text([roman(
        "Three servers, two of which must agree, feeding chrony through SOCK:",
    )]);
    r.control("PP", []);
    r.control("nf", []);
    r.control("RS", ["4"]);
    for line in EXAMPLE.lines() {
        r.text([roman(line)]);
    }
    r.control("RE", []);
    r.control("fi", []);
    r.control("PP", []);
    r.text([roman(
        "and in chrony.conf: refclock SOCK /run/chrony.webntp.sock refid WNTP poll 5 filter 1 \
         delay 0.01 precision 1e-3",
    )]);
    pieces.push(piece(&r));
    pieces.push(section(
        "SEE ALSO",
        &["webntpd(8), chrony.conf(5), ntp.conf(5), /usr/share/doc/webntpd/docs/operating.md"],
    ));
    render(pieces)
}

/// The man page's example: a working file (tests/it/docs.rs checks that it passes).
pub const EXAMPLE: &str = r#"[[source]]
url = "https://time1.example.net/"
[[source]]
url = "wss://time2.example.net/"
[[source]]
url = "https://time3.example.com/"
mode = "toh"

[[output]]
type = "sock"
path = "/run/chrony.webntp.sock"

[selection]
min_sources = 2"#;
