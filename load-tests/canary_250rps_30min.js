// Canary load for the events API: a constant arrival rate of POST /api/v1/events.
//
// Environment (set by canarykit's k6 runner):
//   BASE_URL           service root, e.g. http://127.0.0.1:8000 (no trailing slash)
//   RATE               requests per second (default 250)
//   DURATION           k6 duration string (default 30m)
//   PRE_ALLOCATED_VUS  VUs created before the start (default 50)
//   MAX_VUS            VUs k6 may add when responses slow down (default 100)
//   CANARY_TOKEN       bearer token of the events API (required, never printed)
import http from 'k6/http';
import { check } from 'k6';
import { Rate } from 'k6/metrics';

const SLOW_RESPONSE_MS = 120;

const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8000').replace(/\/+$/, '');
const RATE = parseInt(__ENV.RATE || '250', 10);
const DURATION = __ENV.DURATION || '30m';
const PRE_ALLOCATED_VUS = parseInt(__ENV.PRE_ALLOCATED_VUS || '50', 10);
const MAX_VUS = parseInt(__ENV.MAX_VUS || '100', 10);
const TOKEN = __ENV.CANARY_TOKEN || '';

if (TOKEN === '') {
  throw new Error('CANARY_TOKEN is empty: set it to the bearer token of the events API');
}

// A request counts as an error unless its status is 202 and it took under 120 ms.
export const errors = new Rate('errors');

export const options = {
  discardResponseBodies: true,
  summaryTrendStats: ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)'],
  scenarios: {
    canary: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: PRE_ALLOCATED_VUS,
      maxVUs: MAX_VUS,
    },
  },
  thresholds: {
    http_req_duration: [`p(95)<${SLOW_RESPONSE_MS}`],
    http_req_failed: ['rate<0.005'],
    errors: ['rate<0.005'],
  },
};

const EVENT_TYPES = ['application_started', 'application_submitted', 'document_uploaded'];
const params = {
  headers: {
    'Content-Type': 'application/json',
    Authorization: `Bearer ${TOKEN}`,
  },
  tags: { name: 'POST /api/v1/events' },
};

export default function () {
  const event = {
    event_type: EVENT_TYPES[Math.floor(Math.random() * EVENT_TYPES.length)],
    user_id: `user-${Math.floor(Math.random() * 100000)}`,
    scholarship_id: `scholarship-${Math.floor(Math.random() * 500)}`,
    timestamp: new Date().toISOString(),
  };
  const response = http.post(`${BASE_URL}/api/v1/events`, JSON.stringify(event), params);
  const ok = check(response, {
    'status is 202': (r) => r.status === 202,
    [`duration < ${SLOW_RESPONSE_MS} ms`]: (r) => r.timings.duration < SLOW_RESPONSE_MS,
  });
  errors.add(!ok);
}
