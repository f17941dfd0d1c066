# Runs a command on a pseudo-terminal and hangs the terminal up on request, as closing a terminal
# window does (Node has no pty of its own). Usage: pty.py session|plain MARKER SECONDS -- COMMAND...
#   session: the command leads its session with the pty as its controlling terminal (the kernel
#            sends it SIGHUP at the hangup); plain: the pty is only its stdin/stdout/stderr.
# Prints "ready" once the command's output holds MARKER, hangs up on a line from stdin, then prints
# one JSON line: {"exit": code} or {"signal": n} when the command ended within SECONDS, else
# {"alive": true} (and kills it).
import json, os, signal, sys, time, fcntl, termios

mode, marker, seconds = sys.argv[1], sys.argv[2].encode(), float(sys.argv[3])
command = sys.argv[5:]
master, slave = os.openpty()
pid = os.fork()
if pid == 0:
    if mode == 'session':
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    os.close(master)
    os.close(slave)
    os.execvp(command[0], command)
os.close(slave)
seen = b''
while marker not in seen:
    try:
        chunk = os.read(master, 65536)
    except OSError:
        chunk = b''
    if not chunk:
        print(json.dumps({'error': 'the command ended before printing the marker', 'output': seen.decode(errors='replace')}), flush=True)
        sys.exit(1)
    seen += chunk
print('ready', flush=True)
sys.stdin.readline()
os.close(master)
deadline = time.time() + seconds
while time.time() < deadline:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done == pid:
        print(json.dumps({'exit': os.WEXITSTATUS(status)} if os.WIFEXITED(status) else {'signal': os.WTERMSIG(status)}), flush=True)
        sys.exit(0)
    time.sleep(0.05)
os.kill(pid, signal.SIGKILL)
os.waitpid(pid, 0)
print(json.dumps({'alive': True}), flush=True)
