/**
 * runners/oci/archive.ts: the docker-archive a staged directory becomes, read back with GNU
 * tar (an independent reader): the manifest names the config and the layer, the config's
 * diff_id is the layer's sha256, the layer holds the tree (modes, symlinks, long names,
 * owners 0:0), and the same tree gives the same bytes. (containerd's own `ctr images import`
 * loads these archives in the cri-socket-stale integration test.)
 */
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_PATH, imageConfig, writeImageArchive, type ImageArchive } from '../../runners/oci/archive.js';
import { paxRecord } from '../../runners/oci/tar.js';

const root = mkdtempSync(join(tmpdir(), 'bpfgate-oci-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const LONG_DIR = `usr/share/${'a-rather-long-directory-name/'.repeat(5)}end`;
const LONG_FILE = `${LONG_DIR}/${'f'.repeat(60)}.txt`;

function stage(dir: string): void {
  mkdirSync(join(dir, 'bin'), { recursive: true });
  mkdirSync(join(dir, 'etc'));
  mkdirSync(join(dir, 'tmp'));
  chmodSync(join(dir, 'tmp'), 0o1777);
  writeFileSync(join(dir, 'bin', 'tool'), '#!/bin/sh\necho hi\n');
  chmodSync(join(dir, 'bin', 'tool'), 0o755);
  symlinkSync('tool', join(dir, 'bin', 'alias'));
  writeFileSync(join(dir, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  mkdirSync(join(dir, LONG_DIR), { recursive: true });
  writeFileSync(join(dir, LONG_FILE), 'deep\n');
  symlinkSync(`/${LONG_FILE}`, join(dir, 'etc', 'long-link'));
}

const tar = async (args: string[], cwd?: string): Promise<Buffer> => Buffer.from((await execa('tar', args, { cwd, encoding: 'buffer' })).stdout);

describe('writeImageArchive', () => {
  let archive: ImageArchive;
  const staged = join(root, 'stage');
  const out = join(root, 'image.tar');

  beforeAll(async () => {
    stage(staged);
    archive = await writeImageArchive(
      { tag: ['registry.example/test/tool:1', 'tool:latest'], arch: 'arm64', variant: 'v8', entrypoint: ['/bin/tool'], cmd: ['--now'], env: ['A=1'], root: staged },
      out,
    );
  });

  it('holds exactly a manifest, a config named by its sha256 and one layer named by its diff_id', async () => {
    const list = (await tar(['-tf', out])).toString().trim().split('\n');
    const configHex = archive.imageId.replace('sha256:', '');
    const layerHex = (archive.diffIds[0] as string).replace('sha256:', '');
    expect(list).toEqual(['manifest.json', `${configHex}.json`, `${layerHex}/`, `${layerHex}/layer.tar`]);
    const manifest = JSON.parse((await tar(['-xOf', out, 'manifest.json'])).toString());
    expect(manifest).toEqual([{ Config: `${configHex}.json`, RepoTags: ['registry.example/test/tool:1', 'tool:latest'], Layers: [`${layerHex}/layer.tar`] }]);
    const configBytes = await tar(['-xOf', out, `${configHex}.json`]);
    expect(createHash('sha256').update(configBytes).digest('hex')).toBe(configHex);
  });

  it("writes a config whose diff_id is the sha256 of the uncompressed layer, with the image's settings", async () => {
    const configHex = archive.imageId.replace('sha256:', '');
    const config = JSON.parse((await tar(['-xOf', out, `${configHex}.json`])).toString());
    const layer = await tar(['-xOf', out, `${(archive.diffIds[0] as string).replace('sha256:', '')}/layer.tar`]);
    expect(layer.length).toBe(archive.layerBytes);
    expect(config.rootfs).toEqual({ type: 'layers', diff_ids: [`sha256:${createHash('sha256').update(layer).digest('hex')}`] });
    expect(config).toMatchObject({ architecture: 'arm64', os: 'linux', variant: 'v8' });
    expect(config.config).toEqual({ Env: [DEFAULT_PATH, 'A=1'], Entrypoint: ['/bin/tool'], Cmd: ['--now'], WorkingDir: '/' });
  });

  it('puts the staged tree into the layer: parents first, modes kept, symlinks kept, long names whole, owned by 0:0', async () => {
    const layerName = `${(archive.diffIds[0] as string).replace('sha256:', '')}/layer.tar`;
    const layerFile = join(root, 'layer.tar');
    writeFileSync(layerFile, await tar(['-xOf', out, layerName]));
    const verbose = (await tar(['--numeric-owner', '-tvf', layerFile])).toString().trim().split('\n');
    const names = (await tar(['-tf', layerFile])).toString().trim().split('\n');
    expect(names.slice(0, 4)).toEqual(['bin/', 'bin/alias', 'bin/tool', 'etc/']);
    expect(names).toContain(LONG_FILE);
    expect(names.indexOf('usr/')).toBeLessThan(names.indexOf(LONG_FILE));
    expect(verbose.every((l) => / 0\/0 /.test(l))).toBe(true);
    expect(verbose.find((l) => l.endsWith(' bin/tool'))).toMatch(/^-rwxr-xr-x /);
    expect(verbose.find((l) => l.endsWith(' tmp/'))).toMatch(/^drwxrwxrwt /);
    expect(verbose.find((l) => l.includes(' bin/alias'))).toMatch(/^lrwxrwxrwx .* bin\/alias -> tool$/);
    expect(verbose.find((l) => l.includes(' etc/long-link'))).toContain(`-> /${LONG_FILE}`);
    const into = join(root, 'extracted');
    mkdirSync(into);
    await tar(['-xf', layerFile], into);
    expect(readFileSync(join(into, LONG_FILE), 'utf8')).toBe('deep\n');
  });

  it('gives the same bytes for the same tree and spec (a stable image id)', async () => {
    const again = await writeImageArchive(
      { tag: ['registry.example/test/tool:1', 'tool:latest'], arch: 'arm64', variant: 'v8', entrypoint: ['/bin/tool'], cmd: ['--now'], env: ['A=1'], root: staged },
      join(root, 'again.tar'),
    );
    expect(again.imageId).toBe(archive.imageId);
    expect(readFileSync(join(root, 'again.tar')).equals(readFileSync(out))).toBe(true);
  });

  it('refuses what a layer cannot hold, and leaves no file behind', async () => {
    const bad = join(root, 'bad');
    mkdirSync(bad);
    await execa('mkfifo', [join(bad, 'fifo')]);
    await expect(writeImageArchive({ tag: 'x:1', arch: 'amd64', root: bad }, join(root, 'bad.tar'))).rejects.toThrow(/only directories, regular files and symlinks/);
    expect(String(await execa('ls', ['-A', root]).then((r) => r.stdout)).split('\n')).not.toContain('bad.tar');
  });
});

describe('the pieces', () => {
  it('writes pax records whose length counts itself', () => {
    for (const value of ['x', 'a'.repeat(90), 'b'.repeat(95), 'c'.repeat(994)]) {
      const rec = paxRecord('path', value);
      expect(Buffer.byteLength(rec)).toBe(Number(rec.split(' ')[0]));
    }
  });

  it('keeps a PATH the image gives and adds the usual one otherwise', () => {
    expect((imageConfig({ arch: 'amd64', env: ['PATH=/x'] }, []).config as { Env: string[] }).Env).toEqual(['PATH=/x']);
    expect((imageConfig({ arch: 'amd64' }, ['sha256:0']).config as { Env: string[] }).Env).toEqual([DEFAULT_PATH]);
  });
});
