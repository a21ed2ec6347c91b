/**
 * Saves of one file serialized in this process: between a document and its content landing on disk, another save
 * would take the file for one whose content is lost and "repair" it.
 */
const pathLocks = new Map<string, Promise<void>>();

/** Waits for the saves of `diskPath` before this one; resolves to the function that lets the next one go. */
export async function lockPath(diskPath: string): Promise<() => void> {
  const before = pathLocks.get(diskPath) ?? Promise.resolve();
  let unlock!: () => void;
  const mine = new Promise<void>((resolve) => (unlock = resolve));
  const chained = before.then(() => mine);
  pathLocks.set(diskPath, chained);
  await before;
  return () => {
    unlock();
    if (pathLocks.get(diskPath) === chained) pathLocks.delete(diskPath);
  };
}
