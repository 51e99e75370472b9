/* bench-rabbitmq: the `tern bench` workload on RabbitMQ (tests/bench/compare.sh):
 * persistent messages to a durable queue with publisher confirms, at most
 * --window unconfirmed; a second connection consumes with manual
 * acknowledgement. Prints one JSON line. --url is amqp://HOST:PORT. */
#include <unistd.h>

#include <amqp.h>
#include <amqp_tcp_socket.h>

#include "compare_common.h"

static struct cmp_stats stats = {.mu = PTHREAD_MUTEX_INITIALIZER};
static char host[256] = "127.0.0.1";
static int port = 5672;
static const char *queue = "tern-bench";

static amqp_connection_state_t open_conn(void)
{
	amqp_connection_state_t c = amqp_new_connection();
	amqp_socket_t *s = amqp_tcp_socket_new(c);
	amqp_rpc_reply_t r;

	if (s == NULL || amqp_socket_open(s, host, port) != AMQP_STATUS_OK) {
		fprintf(stderr, "bench-rabbitmq: cannot connect to %s:%d\n", host, port);
		exit(1);
	}
	r = amqp_login(c, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest");
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		fprintf(stderr, "bench-rabbitmq: login refused\n");
		exit(1);
	}
	amqp_channel_open(c, 1);
	if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL) {
		fprintf(stderr, "bench-rabbitmq: cannot open a channel\n");
		exit(1);
	}
	return c;
}

static void *consume(void *arg)
{
	amqp_connection_state_t c = open_conn();
	struct timeval tv = {0, 200000};

	(void)arg;
	amqp_basic_qos(c, 1, 0, 1000, 0);
	amqp_basic_consume(c, 1, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 0, 0,
	                   amqp_empty_table);
	if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL) {
		fprintf(stderr, "bench-rabbitmq: cannot consume\n");
		exit(1);
	}
	while (cmp_now_us() < stats.stop_at + 500000) {
		amqp_envelope_t env;
		amqp_rpc_reply_t r;
		amqp_maybe_release_buffers(c);
		r = amqp_consume_message(c, &env, &tv, 0);
		if (r.reply_type != AMQP_RESPONSE_NORMAL)
			continue;
		cmp_record(&stats, env.message.body.bytes, env.message.body.len);
		amqp_basic_ack(c, 1, env.delivery_tag, 0);
		amqp_destroy_envelope(&env);
	}
	amqp_connection_close(c, AMQP_REPLY_SUCCESS);
	amqp_destroy_connection(c);
	return NULL;
}

int main(int argc, char **argv)
{
	struct cmp_args a;
	amqp_connection_state_t c;
	amqp_basic_properties_t props;
	pthread_t consumer;
	uint64_t published = 0, confirmed = 0, failed = 0;
	char *buf;
	int64_t t0;

	cmp_parse(argc, argv, "bench-rabbitmq", "amqp://127.0.0.1:5672", &a);
	if (sscanf(a.url, "amqp://%255[^:]:%d", host, &port) != 2) {
		fprintf(stderr, "bench-rabbitmq: --url amqp://HOST:PORT\n");
		return 2;
	}
	if ((buf = calloc(1, (size_t)a.size)) == NULL)
		return 1;
	memset(buf + sizeof(int64_t), 'x', (size_t)a.size - sizeof(int64_t));
	c = open_conn();
	amqp_queue_declare(c, 1, amqp_cstring_bytes(queue), 0, 1, 0, 0, amqp_empty_table);
	amqp_queue_purge(c, 1, amqp_cstring_bytes(queue));
	amqp_confirm_select(c, 1);
	if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL) {
		fprintf(stderr, "bench-rabbitmq: cannot set up the queue\n");
		return 1;
	}
	memset(&props, 0, sizeof(props));
	props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
	props.delivery_mode = 2; /* persistent */

	t0 = cmp_now_us();
	stats.measure_from = t0 + (int64_t)a.warmup * 1000000;
	stats.stop_at = stats.measure_from + (int64_t)a.duration * 1000000;
	pthread_create(&consumer, NULL, consume, NULL);
	while (cmp_now_us() < stats.stop_at || confirmed < published) {
		amqp_frame_t f;
		if (cmp_now_us() < stats.stop_at && published - confirmed < (uint64_t)a.window) {
			int64_t t = cmp_now_us();
			amqp_bytes_t body = {(size_t)a.size, buf};
			memcpy(buf, &t, sizeof(t));
			if (amqp_basic_publish(c, 1, amqp_empty_bytes, amqp_cstring_bytes(queue), 0, 0,
			                       &props, body) != AMQP_STATUS_OK) {
				failed++;
				continue;
			}
			published++;
			if (!amqp_frames_enqueued(c) && !amqp_data_in_buffer(c) &&
			    published - confirmed < (uint64_t)a.window)
				continue;
		}
		/* Confirms: basic.ack (or nack) for one tag, or all up to it. */
		{
			struct timeval tv = {1, 0};
			if (amqp_simple_wait_frame_noblock(c, &f, &tv) != AMQP_STATUS_OK)
				continue;
		}
		if (f.frame_type != AMQP_FRAME_METHOD)
			continue;
		if (f.payload.method.id == AMQP_BASIC_ACK_METHOD ||
		    f.payload.method.id == AMQP_BASIC_NACK_METHOD) {
			uint64_t tag;
			int multiple, nack = f.payload.method.id == AMQP_BASIC_NACK_METHOD;
			if (nack) {
				amqp_basic_nack_t *n = f.payload.method.decoded;
				tag = n->delivery_tag;
				multiple = n->multiple;
			} else {
				amqp_basic_ack_t *k = f.payload.method.decoded;
				tag = k->delivery_tag;
				multiple = k->multiple;
			}
			if (nack)
				failed += multiple ? tag - confirmed : 1;
			confirmed = multiple ? tag : confirmed + 1;
		}
	}
	pthread_join(consumer, NULL);
	cmp_report("rabbitmq", &a, &stats, failed);
	amqp_connection_close(c, AMQP_REPLY_SUCCESS);
	amqp_destroy_connection(c);
	free(buf);
	free(stats.lat_us);
	return 0;
}
