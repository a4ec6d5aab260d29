import { MultiBar, Presets, type SingleBar } from 'cli-progress';

const clock = (): string => new Date().toISOString().slice(11, 19);

/**
 * Progress on stderr: a bar (cli-progress) with the step under way and the
 * log lines above it on a terminal; elsewhere (CI, a pipe) the log lines
 * alone, each with the step count.
 */
export class Progress {
  private readonly multibar: MultiBar | undefined;
  private bar: SingleBar | undefined;
  private done = 0;
  private total = 0;

  constructor(tty = process.stderr.isTTY === true) {
    if (tty)
      this.multibar = new MultiBar(
        {
          format: ' {bar} {percentage}% | {value}/{total} | {duration_formatted} | ETA {eta_formatted} | {step}',
          hideCursor: true,
          gracefulExit: false,
          etaBuffer: 20,
        },
        Presets.shades_classic,
      );
  }

  /** Shows the bar, `total` steps long. */
  start(total: number): void {
    this.total = total;
    this.bar = this.multibar?.create(total, 0, { step: 'starting' });
  }

  /** Names the step under way. */
  step(label: string): void {
    this.bar?.update(this.done, { step: label });
  }

  /** One more step done. */
  advance(): void {
    this.done++;
    this.bar?.update(this.done);
  }

  log(line: string): void {
    const count = this.total > 0 && !this.bar ? ` ${this.done}/${this.total}` : '';
    const text = `[bench ${clock()}${count}] ${line}\n`;
    if (this.bar && this.multibar) this.multibar.log(text);
    else process.stderr.write(text);
  }

  stop(): void {
    if (!this.bar) return;
    this.multibar?.stop();
    this.bar = undefined;
  }
}
