/**
 * Host tools the QEMU platform runs (apt, dpkg-deb, readelf, clang): through execa,
 * never rejecting, so callers read the exit code and stderr; a tool that is not
 * installed is an InfraError `infra-tool-missing` naming the Debian package to install.
 */
import { execa, type Options as ExecaOptions } from 'execa';
import { InfraError } from '../../core/errors.js';


/**
 * Runs a host tool through execa without rejecting: callers read exitCode and stderr (or
 * use `assertToolOk`). A tool that is not installed is an InfraError `infra-tool-missing`
 * naming the Debian package that provides it.
 */
export async function runHostTool(
  tool: string,
  args: readonly string[],
  opts: ExecaOptions & { providedBy?: string } = {},
) {
  const { providedBy, ...execaOpts } = opts;
  const result = await execa(tool, args, { ...execaOpts, reject: false, encoding: 'utf8' as const });
  if (result.code === 'ENOENT' && result.exitCode === undefined) {
    throw new InfraError('infra-tool-missing', `${tool} is not installed${providedBy ? ` (apt-get install ${providedBy})` : ''}`, result);
  }
  return result;
}

/** Throws an InfraError with `code` and the tail of stderr when a tool run failed. */
export function assertToolOk(result: { exitCode?: number | undefined; stderr?: unknown; failed?: boolean }, code: string, what: string): void {
  if (!result.failed && result.exitCode === 0) return;
  const stderr = typeof result.stderr === 'string' ? result.stderr : '';
  const tail = stderr.trim().split('\n').slice(-6).join(' | ');
  throw new InfraError(code, `${what} failed (exit ${result.exitCode ?? '?'})${tail ? `: ${tail}` : ''}`);
}
