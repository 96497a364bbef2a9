#!/usr/bin/env bash
# Opt-in: compares hivelog's .reg export and import with a real reg.exe (Wine's). Not part
# of CI. Needs Wine (Debian: `apt-get install wine64`) and a built hivelog.
#
#   bash tools/scripts/wine-compare.sh [path/to/hivelog]
#
# 1. hivelog writes a subtree with a value of every kind and exports it;
# 2. Wine's `reg import` reads that file and `reg export` writes it back: the two files
#    must be byte-identical (regedit's format: UTF-16LE, CRLF, hex wrapping);
# 3. hivelog imports Wine's file into an empty store and exports it: identical again;
# 4. a REGEDIT4 file of changes (deletions, 8-bit text) gives both the same registry.
set -euo pipefail

hivelog=${1:-target/release/hivelog}
command -v wine >/dev/null || { echo "wine is not installed (apt-get install wine64)"; exit 2; }
[ -x "$hivelog" ] || { echo "no hivelog at $hivelog (cargo build --release -p hivelog-cli)"; exit 2; }
hivelog=$(realpath "$hivelog")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export WINEPREFIX="$work/prefix" WINEDEBUG=-all
cd "$work"

key='HKLM\Software\HivelogWineCompare'
h() { "$hivelog" --store "$work/$1" "${@:2}" >/dev/null; }
h a add "$key" -v Text -d 'plain "quoted" \back\slash'
h a add "$key" --ve -d 'the default value'
h a add "$key" -v Expand -t REG_EXPAND_SZ -d '%SystemRoot%\system32'
h a add "$key" -v Multi -t REG_MULTI_SZ -d 'one\0two\0three'
h a add "$key" -v EmptyMulti -t REG_MULTI_SZ -d ''
h a add "$key" -v Dword -t REG_DWORD -d 0x12345678
h a add "$key" -v Qword -t REG_QWORD -d 0x123456789abcdef0
h a add "$key" -v Blob -t REG_BINARY -d "$(python3 -c "print(''.join('%02x' % (i % 256) for i in range(300)))")"
h a add "$key" -v Nothing -t REG_NONE -d ''
h a add "$key" -v 'A rather long value name that pushes the hex data far to the right' -t REG_BINARY -d 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff
h a add "$key" -v App -t 0x100 -d 0102030405
h a add "$key" -v Unicode -d 'é ü 中文 😀'
h a add "$key\\Sub key\\Deeper" -v 'a name with spaces' -d x
h a add "$key\\alpha"
h a add "$key\\Zeta"

"$hivelog" --store "$work/a" export "$key" hivelog.reg >/dev/null
wine reg import hivelog.reg >/dev/null 2>&1
wine reg export "$key" wine.reg /y >/dev/null 2>&1
if ! cmp -s hivelog.reg wine.reg; then
    echo "DIFFERENT: hivelog's export and reg.exe's export of it"
    diff <(iconv -f UTF-16LE -t UTF-8 hivelog.reg) <(iconv -f UTF-16LE -t UTF-8 wine.reg) || true
    exit 1
fi
"$hivelog" --store "$work/b" import wine.reg >/dev/null
"$hivelog" --store "$work/b" export "$key" again.reg >/dev/null
if ! cmp -s wine.reg again.reg; then
    echo "DIFFERENT: reg.exe's export, imported into hivelog and exported again"
    diff <(iconv -f UTF-16LE -t UTF-8 wine.reg) <(iconv -f UTF-16LE -t UTF-8 again.reg) || true
    exit 1
fi
# 4. A REGEDIT4 file of changes (deletions included), applied by both: the same result.
printf 'REGEDIT4\r\n\r\n[-%s\\Sub key]\r\n\r\n[%s]\r\n"Text"=-\r\n"New"=dword:0000002a\r\n"Latin"="caf\xe9"\r\n"Expand8"=hex(2):25,54,45,4d,50,25,00\r\n\r\n' \
    "${key/HKLM/HKEY_LOCAL_MACHINE}" "${key/HKLM/HKEY_LOCAL_MACHINE}" > edits.reg
wine reg import edits.reg >/dev/null 2>&1
wine reg export "$key" wine-edited.reg /y >/dev/null 2>&1
"$hivelog" --store "$work/b" import edits.reg >/dev/null
"$hivelog" --store "$work/b" export "$key" hivelog-edited.reg >/dev/null
if ! cmp -s wine-edited.reg hivelog-edited.reg; then
    echo "DIFFERENT: a REGEDIT4 file of changes applied by reg.exe and by hivelog"
    diff <(iconv -f UTF-16LE -t UTF-8 wine-edited.reg) <(iconv -f UTF-16LE -t UTF-8 hivelog-edited.reg) || true
    exit 1
fi
echo "identical: hivelog's export, reg.exe's re-export of it, and hivelog's re-export of that ($(wc -c < wine.reg) bytes, $(grep -c . <(iconv -f UTF-16LE -t UTF-8 wine.reg)) lines); a REGEDIT4 file of changes applied by both"
