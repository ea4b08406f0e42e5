/**
 * Which process a pid names on this machine (Linux): its pid namespace, the boot it runs in and its start time in clock ticks
 * since that boot (/proc/PID/ns/pid, /proc/sys/kernel/random/boot_id, field 22 of /proc/PID/stat). A lock that records them tells its holder, alive at any age (a run stopped
 * by Ctrl-Z), from a process that reuses its pid (a container restarted under the same hostname gives its first pids again).
 */
import * as fs from 'node:fs';

export interface ProcessIdentity {
  /** The pid namespace, as /proc/PID/ns/pid links it (`pid:[4026531836]`): a pid means one process within one namespace. */
  namespace: string;
  /** The boot, as the kernel names it (a random UUID per boot): after a reboot the same pid may start at the same tick again. */
  boot: string;
  /** The start time, clock ticks after boot (decimal). */
  start: string;
}

/** What /proc says of a process now: its identity, and whether it has exited (a zombie its parent has not reaped yet). */
export interface ProcessNow extends ProcessIdentity {
  exited: boolean;
}

/** Process `pid` (or this one) now, or undefined where /proc does not say (another OS, a pid gone, one not ours to read). */
export function processIdentity(pid: number | 'self'): ProcessNow | undefined {
  try {
    const namespace = fs.readlinkSync(`/proc/${pid}/ns/pid`);
    const boot = bootId();
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 2, the command, is in parentheses and may hold spaces and parentheses: field 3 on start after its last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const start = fields[22 - 3];
    if (boot === undefined || !/^\d+$/.test(start ?? '')) return undefined;
    return { namespace, boot, start, exited: fields[0] === 'Z' || fields[0] === 'X' };
  } catch {
    return undefined;
  }
}

let boot: string | undefined | null = null;

/** This boot's id, read once (undefined where the kernel does not say). */
function bootId(): string | undefined {
  if (boot === null) {
    try {
      boot = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || undefined;
    } catch {
      boot = undefined;
    }
  }
  return boot;
}

let own: ProcessIdentity | undefined | null = null;

/** This process's identity, read once. */
export function ownProcessIdentity(): ProcessIdentity | undefined {
  if (own === null) {
    const now = processIdentity('self');
    own = now && { namespace: now.namespace, boot: now.boot, start: now.start };
  }
  return own;
}
