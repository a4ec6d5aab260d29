import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiFailure, api } from '../api.js';

/** An admin request waiting for the operator's confirmation. */
export interface PendingAction {
  title: string;
  /** What will happen, in a sentence. */
  description: string;
  method: 'POST';
  path: string;
  body: unknown;
}

/** Asks before an admin action, runs it on confirmation and shows its answer. */
export function ConfirmDialog(props: { action: PendingAction; onClose: () => void }) {
  const { action, onClose } = props;
  const ref = useRef<HTMLDialogElement>(null);
  const [state, setState] = useState<'ask' | 'running' | 'done' | 'failed'>('ask');
  const [answer, setAnswer] = useState('');
  useEffect(() => {
    ref.current?.showModal();
  }, []);
  const run = async (): Promise<void> => {
    setState('running');
    try {
      const res = await api<unknown>(action.path, { method: action.method, body: action.body });
      setAnswer(JSON.stringify(res));
      setState('done');
    } catch (err) {
      if (err instanceof ApiFailure) {
        const leaderHttp = typeof err.details.leaderHttp === 'string' ? err.details.leaderHttp : undefined;
        setAnswer(
          `${err.code}: ${err.message}${leaderHttp ? ` (open the dashboard of ${leaderHttp}: http://${leaderHttp}/ui/)` : ''}`,
        );
      } else setAnswer(String(err));
      setState('failed');
    }
  };
  return (
    <dialog ref={ref} onClose={onClose} data-testid="confirm-dialog">
      <h3>{action.title}</h3>
      <p>{action.description}</p>
      <pre class="request">
        {action.method} {action.path} {JSON.stringify(action.body)}
      </pre>
      {state === 'done' && <p class="ok">Done: {answer}</p>}
      {state === 'failed' && <p class="bad">Refused: {answer}</p>}
      <div class="buttons">
        {state === 'ask' || state === 'running' ? (
          <>
            <button type="button" onClick={() => ref.current?.close()}>
              cancel
            </button>
            <button type="button" class="danger" disabled={state === 'running'} onClick={() => void run()}>
              {state === 'running' ? 'working…' : 'confirm'}
            </button>
          </>
        ) : (
          <button type="button" onClick={() => ref.current?.close()}>
            close
          </button>
        )}
      </div>
    </dialog>
  );
}
