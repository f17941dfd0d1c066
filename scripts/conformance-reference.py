#!/usr/bin/python3
"""Record (or re-check) the Autobahn fuzzingserver's verdicts on the clients echohub's conformance
suite is compared with: Node's `ws`, Python's `websockets`, Chromium's own WebSocket and a
deliberately sloppy client. Each client runs the cases against a fresh fuzzingserver twice; a
case is "stable" when both runs gave the same behavior and behaviorClose. The table is what
test/conformance-*.test.ts and test/long/ compare echohub's own verdicts with.

Usage (from the project's folder):
  scripts/conformance-reference.py [--clients ws,sloppy,chromium,python] [--cases '1.*' ...]
         (default cases: all the client cases of sections 1-7, 9, 10, 12 and 13, as the table holds;
          12 and 13 take the longest: 25 to 30 minutes a run for a client that offers compression,
          three clients at once on 2 cores)
                                   [--runs 2] [--out test/fixtures/conformance-reference.json]
  Given cases are merged into the table (all of a client's cases are dropped first when its
  version changed).
  scripts/conformance-reference.py --check [same options]   re-run, compare with the table, write nothing

The fuzzingserver is the Python 3 port of Autobahn|Testsuite (github:ricardo-valero/autobahn-testsuite)
on Debian's python3-twisted, python3-autobahn and python3-jinja2; Python's client is Debian's
python3-websockets. Give the suite's folder with --suite or AUTOBAHN_SUITE, or have its clone in
the temporary folder (autobahn-suite), or its bare mirror in .mirror beside the project's folder.
Nothing of the suite is copied into the project.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECTIONS = ['1.*', '2.*', '3.*', '4.*', '5.*', '6.*', '7.*', '9.*', '10.*', '12.*', '13.*']
CLIENTS = ['ws', 'sloppy', 'chromium', 'python']

# autobahn 22 hands json.dumps bytes close reasons; teach it to write them, change nothing else.
# And the fuzzingserver checks every text payload with wsaccel's UTF-8 validator, at 2 MB/s here,
# which makes sections 12 and 13 take hours: a chunk of ASCII met at a code point's boundary is
# answered without it (the validator's automaton stays in its accepting state on every ASCII
# byte, so the answer is the one it would give); any other chunk still goes through it.
SHIM = '''import json, sys
import autobahn.websocket.utf8validator as u8
_Slow = u8.Utf8Validator
class Utf8Validator:
    def __init__(self):
        self.reset()
    def reset(self):
        self._v = _Slow()
        self._v.reset()
        self._accept = True
        self._ascii = 0
        self._total = 0
    def decode(self, b):
        return self._v.decode(b)
    def validate(self, ba):
        if self._accept and bytes(ba).isascii():
            self._ascii += len(ba)
            self._total += len(ba)
            return True, True, len(ba), self._total
        r = self._v.validate(ba)
        self._accept = r[1]
        self._total = r[3] + self._ascii
        return r[0], r[1], r[2], self._total
u8.Utf8Validator = Utf8Validator
_d = json.dumps
def _p(o):
    if isinstance(o, bytes): return o.decode('utf8', 'replace')
    if isinstance(o, dict): return {k: _p(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)): return [_p(v) for v in o]
    return o
def dumps(o, *a, **k):
    try: return _d(o, *a, **k)
    except TypeError: return _d(_p(o), *a, **k)
json.dumps = dumps
from autobahntestsuite.wstest import run
sys.argv = ['wstest'] + sys.argv[1:]
run()
'''


def find_suite(given):
    if given:
        return given
    clone = os.path.join(tempfile.gettempdir(), 'autobahn-suite')
    if os.path.isdir(clone):
        return clone
    common = subprocess.run(['git', 'rev-parse', '--path-format=absolute', '--git-common-dir'], cwd=PROJECT,
                            capture_output=True, text=True).stdout.strip()
    main = os.path.dirname(common) if common else PROJECT
    for base in (os.path.dirname(main), os.path.dirname(PROJECT)):
        mirror = os.path.join(base, '.mirror', 'ricardo-valero+autobahn-testsuite', 'repo')
        if os.path.isdir(mirror):
            subprocess.run(['git', 'clone', '-q', mirror, clone], check=True)
            return clone
    sys.exit('conformance-reference: no copy of the Autobahn fuzzingserver here (see --help)')


def case_ids(suite, patterns):
    sys.path.insert(0, os.path.join(suite, 'autobahntestsuite'))
    from autobahntestsuite.case import Cases, CaseCategories, CaseSubCategories  # noqa: E402
    from autobahntestsuite.caseset import CaseSet  # noqa: E402
    return CaseSet('websocket', 'Case', Cases, CaseCategories, CaseSubCategories).parseSpecCases({'cases': patterns})


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def run_client(suite, client, agent, ids, work):
    """One fuzzingserver, one client through every case; returns (client version, {case: [behavior, behaviorClose]})."""
    port = free_port()
    outdir = os.path.join(work, f'reports-{agent}')
    spec = os.path.join(work, f'spec-{agent}.json')
    json.dump({'url': f'ws://127.0.0.1:{port}', 'outdir': outdir, 'cases': ids, 'exclude-cases': [],
               'exclude-agent-cases': {}, 'options': {'failByDrop': False}}, open(spec, 'w'))
    shim = os.path.join(work, 'run.py')
    open(shim, 'w').write(SHIM)
    env = dict(os.environ, PYTHONPATH=os.path.join(suite, 'autobahntestsuite'))
    log = open(os.path.join(work, f'server-{agent}.log'), 'w')
    server = subprocess.Popen(['/usr/bin/python3', '-W', 'ignore', shim, '-m', 'fuzzingserver', '-u', '0', '-s', spec],
                              cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(200):
            try:
                socket.create_connection(('127.0.0.1', port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        urls = [f'ws://127.0.0.1:{port}/runCase?casetuple={i}&agent={agent}' for i in ids]
        if client == 'python':
            cmd = ['/usr/bin/python3', os.path.join(PROJECT, 'scripts', 'conformance-python-client.py')]
        else:
            cmd = ['node', '--import', '@tapjs/typescript/import', os.path.join(PROJECT, 'scripts', 'conformance-driver.ts'), client]
        out = subprocess.run(cmd + urls, cwd=PROJECT, capture_output=True, text=True)
        version = (out.stdout.strip().splitlines() or ['?'])[0].split(' ', 1)[-1]
        if out.returncode != 0:
            sys.exit(f'conformance-reference: {client} failed: {out.stderr[-2000:]}')
        update = ['/usr/bin/python3', '-c', 'import asyncio, sys, websockets\n'
                  'async def m():\n'
                  '    async with websockets.connect(sys.argv[1]) as ws:\n'
                  '        await ws.wait_closed()\n'
                  'asyncio.run(m())', f'ws://127.0.0.1:{port}/updateReports?agent={agent}']
        subprocess.run(update, check=True, timeout=300)
        index = json.load(open(os.path.join(outdir, 'index.json')))[agent]
        return version, {i: [index[i]['behavior'], index[i]['behaviorClose']] for i in ids if i in index}
    finally:
        server.terminate()
        server.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--clients', default=','.join(CLIENTS))
    ap.add_argument('--cases', nargs='*', default=SECTIONS, help="Autobahn's patterns, as in its spec file ('12.1.*', '6.4.3')")
    ap.add_argument('--runs', type=int, default=2)
    ap.add_argument('--out', default=os.path.join(PROJECT, 'test', 'fixtures', 'conformance-reference.json'))
    ap.add_argument('--suite', default=os.environ.get('AUTOBAHN_SUITE'))
    ap.add_argument('--check', action='store_true', help='compare a new run with the table; write nothing')
    a = ap.parse_args()
    suite = find_suite(a.suite)
    ids = case_ids(suite, a.cases)
    work = tempfile.mkdtemp(prefix='conformance-reference-')
    table = json.load(open(a.out)) if os.path.exists(a.out) else {'clients': {}}
    differences = 0
    for client in a.clients.split(','):
        runs = []
        for r in range(a.runs):
            t0 = time.time()
            version, verdicts = run_client(suite, client, f'{client}-{r + 1}', ids, work)
            runs.append(verdicts)
            print(f'{client} {version} run {r + 1}: {len(verdicts)} cases in {time.time() - t0:.0f} s', flush=True)
        cases = {}
        for i in ids:
            seen = [tuple(v[i]) if i in v else ('MISSING', 'MISSING') for v in runs]
            entry = {'behavior': seen[0][0], 'behaviorClose': seen[0][1], 'stable': all(s == seen[0] for s in seen)}
            if not entry['stable']:
                entry['runs'] = [list(s) for s in seen]
            cases[i] = entry
        unstable = [i for i, e in cases.items() if not e['stable']]
        print(f'{client}: unstable in the fuzzingserver itself: {" ".join(unstable) or "none"}', flush=True)
        if a.check:
            old = table['clients'].get(client, {}).get('cases', {})
            for i, e in cases.items():
                o = old.get(i)
                if o and o['stable'] and e['stable'] and (o['behavior'], o['behaviorClose']) != (e['behavior'], e['behaviorClose']):
                    differences += 1
                    print(f'  {client} {i}: table {o["behavior"]}/{o["behaviorClose"]}, now {e["behavior"]}/{e["behaviorClose"]}')
        else:
            merged = table['clients'].get(client, {}).get('cases', {})
            if table['clients'].get(client, {}).get('version') != version:
                merged = {}
            merged.update(cases)
            table['clients'][client] = {'version': version, 'cases': {i: merged[i] for i in sorted(merged, key=lambda x: tuple(int(p) for p in x.split('.')))}}
    if a.check:
        print(f'{differences} stable verdicts differ from the table')
        sys.exit(1 if differences else 0)
    table['fuzzingserver'] = 'Autobahn|Testsuite fuzzingserver (Python 3 port), failByDrop false'
    table['runs'] = a.runs
    table['generated_at'] = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, 'w') as f:
        json.dump(table, f, indent=1, sort_keys=True)
        f.write('\n')
    print('wrote', os.path.relpath(a.out, PROJECT))


main()
