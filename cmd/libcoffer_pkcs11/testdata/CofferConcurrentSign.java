// CofferConcurrentSign runs many threads through one SunPKCS11 provider at
// once, as a multi-threaded Java server does. Each thread has its own
// Signature (and Cipher and MessageDigest) objects, initialized once and
// then used round after round; SunPKCS11 hands its sessions from thread to
// thread through its session pool, so each C_*Init lands on a session
// another thread's operation just finished or cancelled in.
//
// Arguments: the SunPKCS11 configuration file, the PIN, the number of
// threads, the number of sign rounds per thread and the number of cipher
// and digest rounds per thread. Each round signs with two update calls
// (C_SignInit, C_SignUpdate x2, C_SignFinal), verifies with SunEC and with
// the provider (C_VerifyInit, C_VerifyUpdate, C_VerifyFinal); every tenth
// round abandons a half-fed signature and a half-fed verification by
// initializing again (SunPKCS11 then ends the operation with C_SignFinal
// or C_VerifyFinal, or on a 3.0 library from JDK 21 on with
// C_SessionCancel) and checks a wrong signature, and abandons a half-fed
// encryption and digest the same way. Cipher rounds encrypt
// and decrypt AES/CBC/PKCS5Padding in two parts, digest rounds hash
// SHA-256 in two parts, each checked against Java's own providers.
//
// It prints one "name: value" line per check and "OK" last, or the first
// failure (thread, round, exception) and exits 1. The program is the same
// for every PKCS#11 library: java_concurrency_test.go runs it on Coffer and
// on SoftHSMv2.
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.security.KeyFactory;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.KeyStore;
import java.security.MessageDigest;
import java.security.Provider;
import java.security.PublicKey;
import java.security.SecureRandom;
import java.security.Security;
import java.security.Signature;
import java.security.spec.ECGenParameterSpec;
import java.security.spec.X509EncodedKeySpec;
import java.util.Arrays;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import javax.crypto.Cipher;
import javax.crypto.KeyGenerator;
import javax.crypto.SecretKey;
import javax.crypto.spec.IvParameterSpec;

public class CofferConcurrentSign {
    static final AtomicReference<String> failure = new AtomicReference<>();
    static final AtomicLong signed = new AtomicLong(), verified = new AtomicLong(),
            rejected = new AtomicLong(), cancelled = new AtomicLong(),
            ciphered = new AtomicLong(), digested = new AtomicLong();

    // FULL_LENGTH_ONLY (environment CONCURRENT_SIGN_FULL_LENGTH_ONLY=1) is
    // for a library that verifies only full-length r||s signatures.
    static final boolean FULL_LENGTH_ONLY = "1".equals(System.getenv("CONCURRENT_SIGN_FULL_LENGTH_ONLY"));

    // shortRS reports whether SunPKCS11 passes the DER ECDSA signature der
    // to C_Verify* shorter than 2 x 32 bytes: it drops leading zero bytes,
    // so the halves are as long as the longer of r and s.
    static boolean shortRS(byte[] der) {
        int i = 2; // SEQUENCE tag and a one-byte length (P-256 fits)
        int longest = 0;
        for (int k = 0; k < 2; k++) {
            int len = der[i + 1];
            int start = i + 2, n = len;
            while (n > 0 && der[start] == 0) {
                start++;
                n--;
            }
            longest = Math.max(longest, n);
            i += 2 + len;
        }
        return longest < 32;
    }

    public static void main(String[] args) throws Exception {
        Provider p = Security.getProvider("SunPKCS11").configure(args[0]);
        Security.addProvider(p);
        KeyStore ks = KeyStore.getInstance("PKCS11", p);
        ks.load(null, args[1].toCharArray()); // logs in
        int threads = Integer.parseInt(args[2]);
        int rounds = Integer.parseInt(args[3]);
        int otherRounds = Integer.parseInt(args[4]);

        KeyPairGenerator kpg = KeyPairGenerator.getInstance("EC", p);
        kpg.initialize(new ECGenParameterSpec("secp256r1"));
        KeyPair kp = kpg.generateKeyPair();
        PublicKey exported = KeyFactory.getInstance("EC", "SunEC")
                .generatePublic(new X509EncodedKeySpec(kp.getPublic().getEncoded()));
        KeyGenerator kg = KeyGenerator.getInstance("AES", p);
        kg.init(128);
        SecretKey aes = kg.generateKey();
        System.out.println("signature provider: " + Signature.getInstance("SHA256withECDSA", p).getProvider().getName());
        System.out.println("threads: " + threads + ", rounds: " + rounds + ", cipher and digest rounds: " + otherRounds);

        CountDownLatch start = new CountDownLatch(1);
        Thread[] ts = new Thread[threads];
        for (int i = 0; i < threads; i++) {
            final int id = i;
            ts[i] = new Thread(() -> {
                int round = -1;
                try {
                    Signature signer = Signature.getInstance("SHA256withECDSA", p);
                    signer.initSign(kp.getPrivate());
                    Signature verifier = Signature.getInstance("SHA256withECDSA", p);
                    verifier.initVerify(kp.getPublic());
                    Signature sunEC = Signature.getInstance("SHA256withECDSA", "SunEC");
                    sunEC.initVerify(exported);
                    Cipher enc = Cipher.getInstance("AES/CBC/PKCS5Padding", p);
                    Cipher dec = Cipher.getInstance("AES/CBC/PKCS5Padding", p);
                    MessageDigest md = MessageDigest.getInstance("SHA-256", p);
                    MessageDigest ref = MessageDigest.getInstance("SHA-256", "SUN");
                    SecureRandom rnd = new SecureRandom();
                    start.await();
                    for (round = 0; round < rounds; round++) {
                        byte[] msg = ("thread " + id + " round " + round + " of " + rounds)
                                .getBytes(StandardCharsets.UTF_8);
                        int cut = msg.length / 2;
                        signer.update(msg, 0, cut);
                        signer.update(msg, cut, msg.length - cut);
                        byte[] sig = signer.sign();
                        while (FULL_LENGTH_ONLY && shortRS(sig)) { // see shortRS
                            signer.update(msg, 0, cut);
                            signer.update(msg, cut, msg.length - cut);
                            sig = signer.sign();
                        }
                        signed.incrementAndGet();
                        sunEC.update(msg);
                        if (!sunEC.verify(sig)) {
                            throw new Exception("SunEC rejects the signature");
                        }
                        verifier.update(msg);
                        if (!verifier.verify(sig)) {
                            throw new Exception("the provider rejects its own signature");
                        }
                        verified.incrementAndGet();
                        if (round % 10 == 9) {
                            verifier.update(msg, 0, cut);
                            if (verifier.verify(sig)) {
                                throw new Exception("a signature of other data verifies");
                            }
                            rejected.incrementAndGet();
                            // Half-fed operations, abandoned: initSign and
                            // initVerify cancel them (C_SignFinal,
                            // C_VerifyFinal) before their own C_*Init.
                            signer.update(msg);
                            signer.initSign(kp.getPrivate());
                            verifier.update(msg);
                            verifier.initVerify(kp.getPublic());
                            cancelled.incrementAndGet();
                        }
                        if (round < otherRounds) {
                            byte[] iv = new byte[16];
                            rnd.nextBytes(iv);
                            byte[] plain = new byte[37 + round % 40];
                            rnd.nextBytes(plain);
                            if (round % 10 == 9) {
                                // Abandoned mid-way: the next init cancels
                                // the encryption, and reset the digest.
                                enc.init(Cipher.ENCRYPT_MODE, aes, new IvParameterSpec(iv));
                                enc.update(plain, 0, 20);
                                md.update(plain, 0, 20);
                                md.reset();
                            }
                            enc.init(Cipher.ENCRYPT_MODE, aes, new IvParameterSpec(iv));
                            byte[] ct = twoParts(enc, plain);
                            dec.init(Cipher.DECRYPT_MODE, aes, new IvParameterSpec(iv));
                            if (!Arrays.equals(twoParts(dec, ct), plain)) {
                                throw new Exception("AES/CBC/PKCS5Padding round trip differs");
                            }
                            ciphered.incrementAndGet();
                            md.update(plain, 0, 20);
                            md.update(plain, 20, plain.length - 20);
                            if (!Arrays.equals(md.digest(), ref.digest(plain))) {
                                throw new Exception("SHA-256 differs from SUN's");
                            }
                            digested.incrementAndGet();
                        }
                    }
                } catch (Throwable e) {
                    StringBuilder sb = new StringBuilder("thread " + id + " round " + round + ": " + e);
                    for (Throwable c = e.getCause(); c != null; c = c.getCause()) {
                        sb.append(" <- ").append(c);
                    }
                    failure.compareAndSet(null, sb.toString());
                }
            });
            ts[i].start();
        }
        start.countDown();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
        for (Thread t : ts) {
            t.join(Math.max(1, TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime())));
            if (t.isAlive()) {
                failure.compareAndSet(null, "a thread is still running after 120 s");
                break;
            }
        }
        System.out.println("signed: " + signed.get());
        System.out.println("verified: " + verified.get());
        System.out.println("rejected: " + rejected.get());
        System.out.println("cancelled: " + cancelled.get());
        System.out.println("ciphered: " + ciphered.get());
        System.out.println("digested: " + digested.get());
        if (failure.get() != null) {
            System.out.println("FAILED " + failure.get());
            System.out.flush();
            Runtime.getRuntime().halt(1);
        }
        System.out.println("OK");
    }

    // twoParts runs c over in with an update of the first 20 bytes and a
    // doFinal of the rest.
    static byte[] twoParts(Cipher c, byte[] in) throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        byte[] a = c.update(in, 0, 20);
        if (a != null) {
            out.write(a);
        }
        out.write(c.doFinal(in, 20, in.length - 20));
        return out.toByteArray();
    }
}
