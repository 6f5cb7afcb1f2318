// The old setup guide's frontend integration, as frontends copied it (the guide's text, not ours):
// loadStripe with the publishable key, createBooking with a Bearer token, confirmCardPayment.
// The browser test runs these functions unchanged in a page that loaded the emulator's Stripe.js.

const API_URL = '/api/payment';
let stripe;
let token;

async function initStripe() {
  const response = await fetch(`${API_URL}/stripe/config/`);
  const { publishable_key } = await response.json();
  stripe = await loadStripe(publishable_key);
  return stripe;
}

async function createBooking(listenerId, packageId, scheduledAt, notes = '') {
  const response = await fetch(`${API_URL}/bookings/create_booking/`, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/json',
      'Authorization': `Bearer ${token}`,
    },
    body: JSON.stringify({
      listener_id: listenerId,
      package_id: packageId,
      scheduled_at: scheduledAt,
      notes: notes,
    }),
  });
  if (!response.ok) {
    throw new Error('Booking failed');
  }
  return response.json();
}

async function confirmPayment(clientSecret, cardElement, email) {
  const { error, paymentIntent } = await stripe.confirmCardPayment(clientSecret, {
    payment_method: {
      card: cardElement,
      billing_details: { email: email },
    },
  });
  if (error) {
    console.error(error.message);
    return { success: false, error: error.message };
  }
  if (paymentIntent.status === 'succeeded') {
    return { success: true, paymentIntent: paymentIntent };
  }
  return { success: false, status: paymentIntent.status };
}
