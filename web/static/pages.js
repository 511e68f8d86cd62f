// A little JavaScript for the pages; each works without it, only less conveniently.
// - Redeem: the button is disabled once tapped (the server redeems once anyway).
// - Scan: live scanning where the browser has BarcodeDetector; otherwise the photo is
//   shrunk before it is sent (a phone photo is several megabytes) and sent at once.
// - A points card's address carries its code after "#", which no browser sends to a server
//   (so no log holds it): the wallet's form takes it from there and is sent.
// - Print: the points card's button prints the page.
"use strict";

(function () {
  const MAX_PHOTO_SIDE_PX = 2000;

  for (const form of document.querySelectorAll("form.redeem, form.once")) {
    form.addEventListener("submit", function () {
      const button = form.querySelector("button");
      if (button.dataset.busy) {
        button.textContent = button.dataset.busy;
      }
      setTimeout(function () { button.disabled = true; }, 0);
    });
  }

  const cardCode = document.getElementById("card-code");
  if (cardCode && cardCode.form && location.hash.length > 1) {
    cardCode.value = decodeURIComponent(location.hash.slice(1));
    history.replaceState(null, "", location.pathname + location.search);
    cardCode.form.submit();
  }

  for (const button of document.querySelectorAll("button[data-print]")) {
    button.hidden = false;
    button.addEventListener("click", function () { window.print(); });
  }

  const photo = document.getElementById("photo");
  if (photo) {
    document.getElementById("photo-submit").hidden = true;
    photo.addEventListener("change", async function () {
      if (!photo.files.length) {
        return;
      }
      try {
        await shrink(photo);
      } catch (error) {
        // Send the photo as taken: the server reads any size up to its limit.
      }
      document.getElementById("photo-form").submit();
    });
  }

  async function shrink(input) {
    if (!window.createImageBitmap || !window.DataTransfer) {
      return;
    }
    const file = input.files[0];
    const bitmap = await createImageBitmap(file);
    const scale = Math.min(1, MAX_PHOTO_SIDE_PX / Math.max(bitmap.width, bitmap.height));
    if (scale === 1) {
      return;
    }
    const canvas = document.createElement("canvas");
    canvas.width = Math.round(bitmap.width * scale);
    canvas.height = Math.round(bitmap.height * scale);
    canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    const blob = await new Promise(function (resolve) {
      canvas.toBlob(resolve, "image/jpeg", 0.9);
    });
    const smaller = new DataTransfer();
    smaller.items.add(new File([blob], "photo.jpg", { type: "image/jpeg" }));
    input.files = smaller.files;
  }

  const live = document.getElementById("live-scan");
  if (live && "BarcodeDetector" in window) {
    BarcodeDetector.getSupportedFormats().then(function (formats) {
      if (formats.indexOf("qr_code") >= 0 && navigator.mediaDevices) {
        live.hidden = false;
        document.getElementById("photo-label").classList.remove("primary");
        live.addEventListener("click", scanLive);
      }
    });
  }

  async function scanLive() {
    const camera = document.getElementById("camera");
    const video = document.getElementById("camera-video");
    const problem = document.getElementById("camera-error");
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia(
        { video: { facingMode: "environment" }, audio: false });
    } catch (error) {
      problem.textContent = live.dataset.noCamera;
      problem.hidden = false;
      return;
    }
    const detector = new BarcodeDetector({ formats: ["qr_code"] });
    let scanning = true;
    function stop() {
      scanning = false;
      stream.getTracks().forEach(function (track) { track.stop(); });
      camera.hidden = true;
    }
    document.getElementById("camera-close").onclick = stop;
    camera.hidden = false;
    video.srcObject = stream;
    await video.play();
    while (scanning) {
      const found = await detector.detect(video).catch(function () { return []; });
      if (found.length && found[0].rawValue) {
        stop();
        document.getElementById("token").value = found[0].rawValue;
        document.getElementById("token-form").submit();
        return;
      }
      await new Promise(function (resolve) { setTimeout(resolve, 200); });
    }
  }
})();
