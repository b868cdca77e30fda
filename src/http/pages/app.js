// latchkey's hosted pages: passkeys (WebAuthn) on top of pages that work
// without this script. First-party, no dependencies.
"use strict";

(function () {
  if (!window.PublicKeyCredential) return;

  const b64 = {
    decode(text) {
      const base = text.replace(/-/g, "+").replace(/_/g, "/");
      const padded = base + "===".slice((base.length + 3) % 4);
      return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0)).buffer;
    },
    encode(buffer) {
      const bytes = new Uint8Array(buffer);
      let text = "";
      for (const byte of bytes) text += String.fromCharCode(byte);
      return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
    },
  };

  function requestOptions(json) {
    if (PublicKeyCredential.parseRequestOptionsFromJSON) {
      return PublicKeyCredential.parseRequestOptionsFromJSON(json);
    }
    const options = Object.assign({}, json, { challenge: b64.decode(json.challenge) });
    if (json.allowCredentials) {
      options.allowCredentials = json.allowCredentials.map((c) => Object.assign({}, c, { id: b64.decode(c.id) }));
    }
    return options;
  }

  function creationOptions(json) {
    if (PublicKeyCredential.parseCreationOptionsFromJSON) {
      return PublicKeyCredential.parseCreationOptionsFromJSON(json);
    }
    const options = Object.assign({}, json, {
      challenge: b64.decode(json.challenge),
      user: Object.assign({}, json.user, { id: b64.decode(json.user.id) }),
    });
    if (json.excludeCredentials) {
      options.excludeCredentials = json.excludeCredentials.map((c) => Object.assign({}, c, { id: b64.decode(c.id) }));
    }
    return options;
  }

  function credentialJSON(credential) {
    if (credential.toJSON) return credential.toJSON();
    const response = {};
    for (const name of ["clientDataJSON", "authenticatorData", "signature", "userHandle", "attestationObject"]) {
      if (credential.response[name]) response[name] = b64.encode(credential.response[name]);
    }
    return { id: credential.id, rawId: b64.encode(credential.rawId), type: credential.type, response: response,
             clientExtensionResults: credential.getClientExtensionResults() };
  }

  async function post(url, token, body) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-Form-Token": token },
      body: JSON.stringify(body || {}),
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(answer.detail || response.status);
    return answer;
  }

  function fail(box) {
    const message = box.querySelector("[data-passkey-error]");
    if (message) { message.hidden = false; message.focus && message.focus(); }
  }

  // Sign in: a button, and conditional UI (passkeys offered in the username field's autofill).
  const signIn = document.querySelector("[data-passkey-sign-in]");
  if (signIn) {
    signIn.hidden = false;
    const token = signIn.dataset.formToken;
    let pending = null;
    const run = async (mediation) => {
      if (pending) pending.abort();
      pending = new AbortController();
      const options = await post("/login/passkey/start", token);
      const request = { publicKey: requestOptions(options.publicKey), signal: pending.signal };
      if (mediation) request.mediation = mediation;
      const credential = await navigator.credentials.get(request);
      const answer = await post("/sign-in/passkey", token, { credential: credentialJSON(credential), continue: signIn.dataset.continue });
      window.location.assign(answer.redirect);
    };
    signIn.querySelector("[data-action=passkey-sign-in]").addEventListener("click", () => {
      run(null).catch((error) => { if (error.name !== "AbortError") fail(signIn); });
    });
    if (PublicKeyCredential.isConditionalMediationAvailable) {
      PublicKeyCredential.isConditionalMediationAvailable().then((available) => {
        if (available) run("conditional").catch(() => {});
      });
    }
  }

  // The second step, with a passkey.
  const second = document.querySelector("[data-passkey-second-factor]");
  if (second) {
    second.hidden = false;
    const token = second.dataset.formToken;
    second.querySelector("[data-action=passkey-second-factor]").addEventListener("click", async () => {
      try {
        const options = await post("/sign-in/second-factor/passkey", token);
        const credential = await navigator.credentials.get({ publicKey: requestOptions(options.publicKey) });
        const answer = await post("/sign-in/passkey", token, { credential: credentialJSON(credential), continue: second.dataset.continue, mfa: true });
        window.location.assign(answer.redirect);
      } catch (error) { fail(second); }
    });
  }

  // The account page: add a passkey.
  const register = document.querySelector("[data-passkey-register]");
  if (register) {
    register.hidden = false;
    const token = register.dataset.formToken;
    register.querySelector("[data-action=passkey-register]").addEventListener("click", async () => {
      try {
        const options = await post("/account/passkeys/start", token);
        const credential = await navigator.credentials.create({ publicKey: creationOptions(options.publicKey) });
        const answer = await post("/account/passkeys/finish", token, { credential: credentialJSON(credential) });
        window.location.assign(answer.redirect);
      } catch (error) { fail(register); }
    });
  }
})();
