/** Where a merge computes: `--device cpu|cuda|auto`, resolved against what the addon found on this machine. */
import { WeightmixError } from '../errors';
import type { NativeInfo } from './native';

/** Where a run may compute: `auto` takes the GPU when one is usable and passes its self-check. */
export type DeviceChoice = 'cpu' | 'cuda' | 'auto';
/** Where a run computed. */
export type Device = 'cpu' | 'cuda';
export const DEVICE_CHOICES: readonly DeviceChoice[] = ['cpu', 'cuda', 'auto'];

/** Why no GPU can be used, or undefined when one can. */
export function cudaUnavailableReason(info: NativeInfo): string | undefined {
  if (info.cudaCompiled && info.cudaDevices && info.cudaDevices.length > 0) return undefined;
  return info.cudaUnavailable ?? (info.cudaCompiled ? 'no usable CUDA device' : 'this build has no CUDA kernels (built without nvcc)');
}

/** Where a run computes, and why `auto` chose the CPU (absent otherwise). */
export interface ResolvedDevice {
  /** Where the arithmetic ran (byte copies and statistics always run on the CPU). */
  device: Device;
  /** Why `auto` chose the CPU (one line), when it did. */
  cpuBecause?: string;
}

/**
 * `cuda` without a usable GPU is an error naming the reason; `auto` takes the GPU when usable, else
 * the CPU, with the reason returned for the run's single notice (its summary line: a notice printed
 * before an error would make that error two lines). `--device cpu` gets no reason.
 */
export function resolveDevice(choice: DeviceChoice, info: NativeInfo, name = '--device'): ResolvedDevice {
  if (choice === 'cpu') return { device: 'cpu' };
  const reason = cudaUnavailableReason(info);
  if (reason === undefined) return { device: 'cuda' };
  if (choice === 'cuda') throw new WeightmixError('CudaUnavailable', `${name} cuda: no usable GPU: ${reason}`);
  return { device: 'cpu', cpuBecause: `no usable GPU: ${reason}` };
}

/** The summary's words for where a run computed: "" for an explicit --device cpu. */
export function describeDevice(ran: ResolvedDevice): string {
  if (ran.device === 'cuda') return 'on the GPU';
  return ran.cpuBecause ? `on the CPU (${ran.cpuBecause})` : '';
}
