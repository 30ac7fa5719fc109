#!/bin/sh
# Install webntpd from a source checkout, for systems without the .deb (`cargo deb`, see
# packaging/README.md):
#   packaging/build-release.sh && sudo packaging/install.sh
# Honours DESTDIR (staging root, default empty) and PREFIX (default /usr).
# Then: systemctl daemon-reload && systemctl enable --now webntpd (the daemon, configured in
# /etc/webntpd.toml) and/or webntpd-server (a plain server, /etc/default/webntpd-server).
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr}
BIN=${BIN:-$here/target/release/webntpd}

if [ ! -x "$BIN" ]; then
    echo "install.sh: $BIN not found: build it first with packaging/build-release.sh (or cargo build --release --locked)" >&2
    exit 66
fi
install -D -m 0755 "$BIN" "$DESTDIR$PREFIX/bin/webntpd"
# The units name /usr/bin/webntpd; point them at the real prefix.
install -d -m 0755 "$DESTDIR/lib/systemd/system"
for unit in webntpd.service webntpd-server.service; do
    sed "s|/usr/bin/webntpd|$PREFIX/bin/webntpd|" "$here/systemd/$unit" \
        > "$DESTDIR/lib/systemd/system/$unit"
    chmod 0644 "$DESTDIR/lib/systemd/system/$unit"
done
# Never overwrite an administrator's settings.
if [ ! -e "$DESTDIR/etc/default/webntpd-server" ]; then
    install -D -m 0644 "$here/config/webntpd-server.default" "$DESTDIR/etc/default/webntpd-server"
fi
if [ ! -e "$DESTDIR/etc/webntpd.toml" ]; then
    install -D -m 0644 "$here/config/webntpd.toml" "$DESTDIR/etc/webntpd.toml"
fi
install -D -m 0644 "$here/README.md" "$DESTDIR$PREFIX/share/doc/webntpd/README.md"
# The README links to docs/*.md relatively: keep the folder.
for page in "$here"/docs/*.md; do
    install -D -m 0644 "$page" "$DESTDIR$PREFIX/share/doc/webntpd/docs/$(basename "$page")"
done
# Man pages and shell completions, generated from the sources (tests/docs.rs keeps them so).
install -D -m 0644 "$here/packaging/man/webntpd.8" "$DESTDIR$PREFIX/share/man/man8/webntpd.8"
install -D -m 0644 "$here/packaging/man/webntpd.toml.5" "$DESTDIR$PREFIX/share/man/man5/webntpd.toml.5"
install -D -m 0644 "$here/packaging/completions/webntpd.bash" \
    "$DESTDIR$PREFIX/share/bash-completion/completions/webntpd"
install -D -m 0644 "$here/packaging/completions/_webntpd" "$DESTDIR$PREFIX/share/zsh/site-functions/_webntpd"
install -D -m 0644 "$here/packaging/completions/webntpd.fish" \
    "$DESTDIR$PREFIX/share/fish/vendor_completions.d/webntpd.fish"
echo "installed webntpd in $DESTDIR$PREFIX; next: edit /etc/webntpd.toml, webntpd check-config, then systemctl daemon-reload && systemctl enable --now webntpd"
