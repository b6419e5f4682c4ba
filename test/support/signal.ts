// A one-shot signal between a test and the code it drives (an app's hook, a fault proxy's
// rule): `fire()` once something happened, `fired` to wait for it.
export interface Signal {
  fired: Promise<void>
  fire: () => void
}

export function signal (): Signal {
  let fire = (): void => {}
  const fired = new Promise<void>((resolve) => { fire = resolve })
  return { fired, fire }
}
