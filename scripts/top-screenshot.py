#!/usr/bin/env python3
"""The README's picture of `perfpy top`: the screen tests/test_top.py captured in tmux
(`PERFPY_SCREENSHOTS=DIR`, `tmux capture-pane -e`: text with its SGR escapes), drawn as a
terminal would, and photographed by headless Chromium.

    PERFPY_SCREENSHOTS=/tmp/shots .venv-tools/bin/pytest tests/test_top.py -k screen
    scripts/top-screenshot.py /tmp/shots/top.ansi docs/top.png
"""

import html
import os
import re
import shutil
import subprocess
import sys
import tempfile

SGR = re.compile(r"\x1b\[([0-9;]*)m")
#: The 8 basic colours and their bright forms, as xterm draws them.
COLOURS = ["#000000", "#cd0000", "#00cd00", "#cdcd00", "#0000ee", "#cd00cd", "#00cdcd",
           "#e5e5e5", "#7f7f7f", "#ff0000", "#00ff00", "#ffff00", "#5c5cff", "#ff00ff",
           "#00ffff", "#ffffff"]
FG, BG = "#e5e5e5", "#1e1e1e"


def to_html(text):
    out = []
    style = {"bold": False, "dim": False, "reverse": False, "fg": None, "bg": None}

    def span(chunk):
        fg, bg = style["fg"] or FG, style["bg"] or BG
        if style["reverse"]:
            fg, bg = bg, fg
        css = "color:%s;background:%s;" % (fg, bg)
        if style["bold"]:
            css += "font-weight:bold;"
        if style["dim"]:
            css += "opacity:0.6;"
        return '<span style="%s">%s</span>' % (css, html.escape(chunk))

    pos = 0
    for m in SGR.finditer(text):
        if m.start() > pos:
            out.append(span(text[pos:m.start()]))
        codes = [int(c) if c else 0 for c in m.group(1).split(";")]
        i = 0
        while i < len(codes):
            c = codes[i]
            if c == 0:
                style.update(bold=False, dim=False, reverse=False, fg=None, bg=None)
            elif c == 1:
                style["bold"] = True
            elif c == 2:
                style["dim"] = True
            elif c == 7:
                style["reverse"] = True
            elif c == 22:
                style["bold"] = style["dim"] = False
            elif c == 27:
                style["reverse"] = False
            elif 30 <= c <= 37:
                style["fg"] = COLOURS[c - 30]
            elif 90 <= c <= 97:
                style["fg"] = COLOURS[c - 90 + 8]
            elif 40 <= c <= 47:
                style["bg"] = COLOURS[c - 40]
            elif c == 39:
                style["fg"] = None
            elif c == 49:
                style["bg"] = None
            elif c in (38, 48) and i + 1 < len(codes):
                i += 4 if codes[i + 1] == 2 else 2  # 24-bit or 256 colours: not used by top
            i += 1
        pos = m.end()
    out.append(span(text[pos:]))
    return ("<html><body style='margin:0;background:%s'><pre style='margin:0;padding:10px;"
            "font:14px/1.25 \"DejaVu Sans Mono\",monospace;color:%s'>%s</pre></body></html>"
            % (BG, FG, "".join(out)))


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, png = sys.argv[1], os.path.abspath(sys.argv[2])
    text = open(src).read().rstrip("\n")
    lines = text.count("\n") + 1
    width = max(len(SGR.sub("", line)) for line in text.splitlines())
    chromium = shutil.which("chromium") or sys.exit("no chromium (Debian's chromium package)")
    with tempfile.TemporaryDirectory() as d:
        page = os.path.join(d, "top.html")
        with open(page, "w") as f:
            f.write(to_html(text))
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                        "--no-first-run", "--disable-background-networking",
                        "--user-data-dir=" + os.path.join(d, "profile"),
                        "--hide-scrollbars", "--screenshot=" + png,
                        "--window-size=%d,%d" % (int(width * 8.45) + 20, int(lines * 17.5) + 20),
                        "file://" + page], check=True, capture_output=True)
    print(png)


if __name__ == "__main__":
    main()
