import { useEffect, useId, useRef, useState } from "react";

interface Props {
  /** The button that asks for confirmation. */
  label: string;
  /** The question shown with the confirm and keep buttons. */
  question: string;
  confirmLabel: string;
  danger?: boolean;
  disabled?: boolean;
  onConfirm: () => void;
}

/** A button that asks before acting, in the page (not a browser dialog): the question
 * gets the focus, Escape or "Keep it" goes back. */
export function ConfirmButton({ label, question, confirmLabel, danger, disabled, onConfirm }: Props) {
  const [asking, setAsking] = useState(false);
  const id = useId();
  const confirmRef = useRef<HTMLButtonElement>(null);
  const openerRef = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    if (asking) confirmRef.current?.focus();
  }, [asking]);
  const close = () => {
    setAsking(false);
    window.setTimeout(() => openerRef.current?.focus(), 0);
  };
  if (!asking) {
    return (
      <button
        ref={openerRef}
        type="button"
        className={danger ? "danger" : undefined}
        disabled={disabled}
        onClick={() => setAsking(true)}
      >
        {label}
      </button>
    );
  }
  return (
    <div
      className={danger ? "confirm danger" : "confirm"}
      role="group"
      aria-labelledby={id}
      onKeyDown={(e) => {
        if (e.key === "Escape") close();
      }}
    >
      <span id={id}>{question}</span>
      <button
        ref={confirmRef}
        type="button"
        className={danger ? "danger-solid" : "primary"}
        onClick={() => {
          setAsking(false);
          onConfirm();
        }}
      >
        {confirmLabel}
      </button>
      <button type="button" onClick={close}>
        Keep it
      </button>
    </div>
  );
}
