/* "Copy link to this setup": the js of the button's second step (digitnet/ui/setup_link.py),
   after the server has built the setup's query ("?preset=...&epochs=3") from the knobs.

   The link is this page's own address (what the visitor sees, behind any proxy or a Space's
   frame) with that query. It goes to the clipboard where the page may write there; where it
   may not (plain http on a LAN address, an old browser, a frame without the permission) it
   is shown selected, for Ctrl+C. Returns [the link, the line under it]. */
async (query, said) => {
  if (!query) return ["", said];
  const link = `${location.origin}${location.pathname}${query}`;
  const line = (text) => `<p class="setup-link-said">${text}</p>`;
  let copied = false;
  if (globalThis.isSecureContext && navigator.clipboard?.writeText) {
    try {
      await navigator.clipboard.writeText(link);
      copied = true;
    } catch (refused) {
      copied = false; // no permission, or the click is too long ago: show it instead
    }
  }
  if (!copied) {
    // The box shows the link once Gradio has drawn this return value, and takes focus once
    // the event is over (Gradio disables an event's outputs while it runs): select it then.
    const started = performance.now();
    const select = () => {
      const box = document.querySelector("#setup-link textarea, #setup-link input");
      if (box && box.value === link && !box.disabled) {
        box.focus();
        box.select();
      } else if (performance.now() - started < 3000) {
        requestAnimationFrame(select);
      }
    };
    requestAnimationFrame(select);
  }
  return [
    link,
    line(
      copied
        ? "Copied: paste the link to hand out this setup."
        : "This page cannot use the clipboard here: the link is selected, copy it with Ctrl+C (⌘C on a Mac).",
    ),
  ];
}
