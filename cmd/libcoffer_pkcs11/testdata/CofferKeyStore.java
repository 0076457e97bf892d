// CofferKeyStore stores keys made by Java's SunPKCS11 provider in its
// PKCS11 KeyStore over the Coffer PKCS#11 library, as a Java application
// would: an AES key from the provider's KeyGenerator as a SecretKeyEntry,
// and an EC private key from its KeyPairGenerator as a PrivateKeyEntry with
// a self-signed certificate. SunPKCS11 stores a key it generated (a session
// object) with C_CopyObject into a token object. Each is then loaded back by
// its alias, from the same KeyStore and from a new one, and used.
// Arguments: the SunPKCS11 configuration file, the PIN (username:password),
// the alias of the secret key and the alias of the private key. It prints
// one line per check, "name: value", and "OK" last; java_keystore_test.go
// asserts the lines.
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.security.Key;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.Provider;
import java.security.SecureRandom;
import java.security.Security;
import java.security.Signature;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.spec.ECGenParameterSpec;
import java.util.Arrays;
import java.util.Collections;
import javax.crypto.Cipher;
import javax.crypto.KeyGenerator;
import javax.crypto.SecretKey;
import javax.crypto.spec.IvParameterSpec;

public class CofferKeyStore {
    public static void main(String[] args) throws Exception {
        Provider p = Security.getProvider("SunPKCS11").configure(args[0]);
        Security.addProvider(p);
        char[] pin = args[1].toCharArray();
        String secretAlias = args[2];
        String privateAlias = args[3];

        KeyStore ks = KeyStore.getInstance("PKCS11", p);
        ks.load(null, pin);

        // The flow: a generated AES key stored under an alias.
        KeyGenerator kg = KeyGenerator.getInstance("AES", p);
        kg.init(256);
        SecretKey generated = kg.generateKey();
        ks.setEntry(secretAlias, new KeyStore.SecretKeyEntry(generated), null);
        System.out.println("stored " + secretAlias + ": " + ks.containsAlias(secretAlias));
        System.out.println("entry is a secret key: " + ks.entryInstanceOf(secretAlias, KeyStore.SecretKeyEntry.class));
        Key loaded = ks.getKey(secretAlias, null);
        System.out.println("loaded key: " + loaded.getAlgorithm());
        byte[] plain = "stored in the Coffer KeyStore".getBytes(StandardCharsets.UTF_8);
        byte[] iv = new byte[16];
        new SecureRandom().nextBytes(iv);
        byte[] ct = crypt(p, Cipher.ENCRYPT_MODE, generated, iv, plain);
        System.out.println("AES/CBC generated encrypts, loaded decrypts: " + Arrays.equals(crypt(p, Cipher.DECRYPT_MODE, loaded, iv, ct), plain));
        System.out.println("AES/CBC loaded encrypts, generated decrypts: "
                + Arrays.equals(crypt(p, Cipher.DECRYPT_MODE, generated, iv, crypt(p, Cipher.ENCRYPT_MODE, loaded, iv, plain)), plain));

        // A private key entry: the generated EC key with its certificate.
        KeyPairGenerator kpg = KeyPairGenerator.getInstance("EC", p);
        kpg.initialize(new ECGenParameterSpec("secp256r1"));
        KeyPair kp = kpg.generateKeyPair();
        X509Certificate cert = selfSigned(p, kp, privateAlias);
        System.out.println("certificate verifies: " + verifies(cert));
        ks.setEntry(privateAlias, new KeyStore.PrivateKeyEntry(kp.getPrivate(), new Certificate[] {cert}), null);
        System.out.println("stored " + privateAlias + ": " + ks.containsAlias(privateAlias));
        System.out.println("entry is a private key: " + ks.entryInstanceOf(privateAlias, KeyStore.PrivateKeyEntry.class));

        // A new KeyStore, as another run of the application, finds both.
        KeyStore again = KeyStore.getInstance("PKCS11", p);
        again.load(null, pin);
        Key reloaded = again.getKey(secretAlias, null);
        System.out.println("reloaded " + secretAlias + " decrypts: " + Arrays.equals(crypt(p, Cipher.DECRYPT_MODE, reloaded, iv, ct), plain));
        PrivateKey priv = (PrivateKey) again.getKey(privateAlias, null);
        Certificate[] chain = again.getCertificateChain(privateAlias);
        System.out.println("reloaded " + privateAlias + " chain: " + (chain != null ? chain.length : 0));
        System.out.println("reloaded certificate is the stored one: " + (chain != null && chain[0].equals(cert)));
        Signature s = Signature.getInstance("SHA256withECDSA", p);
        s.initSign(priv);
        s.update(plain);
        byte[] sig = s.sign();
        Signature v = Signature.getInstance("SHA256withECDSA", "SunEC");
        v.initVerify(cert.getPublicKey());
        v.update(plain);
        System.out.println("reloaded " + privateAlias + " signs (SunEC verifies): " + v.verify(sig));

        again.deleteEntry(secretAlias);
        again.deleteEntry(privateAlias);
        System.out.println("deleted: " + !Collections.list(again.aliases()).contains(secretAlias)
                + " " + !Collections.list(again.aliases()).contains(privateAlias));
        System.out.println("OK");
    }

    static byte[] crypt(Provider p, int mode, Key key, byte[] iv, byte[] in) throws Exception {
        Cipher c = Cipher.getInstance("AES/CBC/PKCS5Padding", p);
        c.init(mode, key, new IvParameterSpec(iv));
        return c.doFinal(in);
    }

    static boolean verifies(X509Certificate cert) {
        try {
            cert.verify(cert.getPublicKey(), "SunEC");
            return true;
        } catch (Exception e) {
            return false;
        }
    }

    // selfSigned makes a minimal X.509 v3 certificate for kp, signed with
    // its private key through the provider (Java has no public builder).
    static X509Certificate selfSigned(Provider p, KeyPair kp, String cn) throws Exception {
        byte[] ecdsaWithSHA256 = der(0x30, der(0x06, new byte[] {0x2a, (byte) 0x86, 0x48, (byte) 0xce, 0x3d, 0x04, 0x03, 0x02}));
        byte[] name = der(0x30, der(0x31, der(0x30,
                der(0x06, new byte[] {0x55, 0x04, 0x03}), der(0x0c, cn.getBytes(StandardCharsets.UTF_8)))));
        byte[] validity = der(0x30, der(0x17, "260101000000Z".getBytes(StandardCharsets.US_ASCII)),
                der(0x17, "361231235959Z".getBytes(StandardCharsets.US_ASCII)));
        byte[] tbs = der(0x30,
                der(0xa0, der(0x02, new byte[] {2})),
                der(0x02, new BigInteger(63, new SecureRandom()).add(BigInteger.ONE).toByteArray()),
                ecdsaWithSHA256, name, validity, name, kp.getPublic().getEncoded());
        Signature s = Signature.getInstance("SHA256withECDSA", p);
        s.initSign(kp.getPrivate());
        s.update(tbs);
        byte[] sig = s.sign();
        byte[] bits = new byte[sig.length + 1];
        System.arraycopy(sig, 0, bits, 1, sig.length);
        byte[] cert = der(0x30, tbs, ecdsaWithSHA256, der(0x03, bits));
        return (X509Certificate) CertificateFactory.getInstance("X.509").generateCertificate(new ByteArrayInputStream(cert));
    }

    // der encodes one DER element of the tag with the parts as its content.
    static byte[] der(int tag, byte[]... parts) {
        ByteArrayOutputStream content = new ByteArrayOutputStream();
        for (byte[] part : parts) {
            content.writeBytes(part);
        }
        int n = content.size();
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.write(tag);
        if (n < 0x80) {
            out.write(n);
        } else if (n < 0x100) {
            out.write(0x81);
            out.write(n);
        } else {
            out.write(0x82);
            out.write(n >> 8);
            out.write(n & 0xff);
        }
        out.writeBytes(content.toByteArray());
        return out.toByteArray();
    }
}
